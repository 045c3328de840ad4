# bash completion for tickslab(1): its commands, each command's options and
# the global ones (cli/tickslab.c and the commands' --help texts), files for
# --config, -o and send's FILE, sockets for --socket.
_tickslab() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi
    local commands="ping stats top last range nodes symbols advice export tail request send gen help"
    local global="--socket --config --connect --timeout --help --version"

    case $prev in
        --config|-o)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --socket)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --ts)
            COMPREPLY=($(compgen -W "ns iso string" -- "$cur")); return ;;
        --format)
            COMPREPLY=($(compgen -W "msgpack csv jsonl" -- "$cur")); return ;;
        --connect|--timeout|--from|--count|--subscribe|--producer|--rate|--symbols|--interval|\
        --connections|--seed|--extra-fields|--extra-share|--duration|--wait-timeout|\
        --brokers|--topic|--nodes-topic)
            return ;;
    esac

    # The command: the first word that is not an option or an option's value.
    local i cmd=
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --socket|--config|--connect|--timeout) ((i++)) ;;
            -*) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done

    local opts=
    case $cmd in
        '')
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$global" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$commands" -- "$cur"))
            fi
            return ;;
        help)
            COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
        ping|request) opts= ;;
        stats)
            opts="--text --json --slabs --prometheus"
            if [[ $cur != -* ]]; then
                COMPREPLY=($(compgen -W "config store schema ingest ticks connections memory
                    symbols strings fields undeclared acks journal checkpoint archive disk
                    limits subscribe lifecycle slabs" -- "$cur"))
                return
            fi ;;
        top) opts="--interval --count" ;;
        last) opts="--ts --json --brokers --topic --nodes-topic" ;;
        symbols) opts="--ts --json" ;;
        range) opts="--all --ts --json --brokers --topic --nodes-topic" ;;
        nodes) opts="--brokers --nodes-topic --json" ;;
        advice) opts="--json" ;;
        export) opts="--format --ts -o" ;;
        tail) opts="--from --ts --csv --count --subscribe" ;;
        send) opts="--extra --array --acks --sync --producer" ;;
        gen) opts="--count --rate --symbols --connections --seed --array --extra-fields
                   --extra-share --duration --wait --wait-timeout" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
    elif [[ $cmd == send ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _tickslab tickslab
