#!/usr/bin/env python3
"""verify-install.py BUILD_DIR SOURCE_ROOT

`meson install --destdir` of the build into a temp dir, then checks what
landed there: exactly the expected files (both binaries, the config in
sysconfdir/tickslab and as an example, the unit, the README, the man pages
where scdoc built them, the bash completion); the unit names the installed
paths; a second install keeps a config that was edited; `man -l` renders
each page without a warning; the pages cover every command and option of
the --help texts and every config key of lib/config.c's table; the bash
completion offers every command.  Prints "ok NAME" / "FAIL NAME: ..." /
"skip NAME: reason" a case; exits 1 if any failed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

build, src = (os.path.abspath(a) for a in sys.argv[1:3])
failed = False


def ok(name):
    print(f"ok {name}")


def fail(name, why):
    global failed
    failed = True
    print(f"FAIL {name}: {why}")


def skip(name, why):
    print(f"skip {name}: {why}")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


opts = {o["name"]: o["value"] for o in json.loads(
    run(["meson", "introspect", "--buildoptions", build]).stdout)}
prefix = opts["prefix"]


def absdir(name):
    return os.path.join(prefix, opts[name])


bindir, sbindir, sysconfdir = absdir("bindir"), absdir("sbindir"), absdir("sysconfdir")
datadir, mandir = absdir("datadir"), absdir("mandir")
docdir = os.path.join(datadir, "doc", "tickslab")
completiondir = opts.get("bashcompletiondir") or os.path.join(
    datadir, "bash-completion", "completions")
have_man = os.path.exists(os.path.join(build, "man", "tickslabd.8"))
pages = {"tickslabd.8": "man8", "tickslab.1": "man1", "tickslab.yaml.5": "man5"}

tmp = tempfile.mkdtemp(prefix="tks-install-")
try:
    root = os.path.join(tmp, "root")
    r = run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", root])
    if r.returncode != 0:
        fail("meson_install_into_a_destdir", f"exit {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
        sys.exit(1)
    ok("meson_install_into_a_destdir")

    got = set()
    for d, _, files in os.walk(root):
        for f in files:
            got.add(os.path.join(d, f)[len(root):])
    units = [p for p in got if p.endswith("/systemd/system/tickslabd.service")]
    want = {
        f"{sbindir}/tickslabd",
        f"{bindir}/tickslab",
        f"{sysconfdir}/tickslab/tickslab.yaml",
        f"{docdir}/examples/tickslab.yaml",
        f"{docdir}/README.md",
        f"{completiondir}/tickslab",
    }
    if have_man:
        want |= {f"{mandir}/{sec}/{p}" for p, sec in pages.items()}
    unit_dirs = {opts.get("systemdsystemunitdir") or "", os.path.join(prefix, "lib/systemd/system"),
                 "/lib/systemd/system", "/usr/lib/systemd/system"}
    if len(units) == 1 and os.path.dirname(units[0]) in unit_dirs:
        want.add(units[0])
    name = "install_puts_exactly_the_expected_files"
    print("installed:\n  " + "\n  ".join(sorted(got)))
    if got == want and len(units) == 1:
        ok(name)
    else:
        fail(name, f"missing {sorted(want - got)}, unexpected {sorted(got - want)}, units {units}")

    name = "installed_unit_names_the_installed_paths"
    if units:
        unit = open(root + units[0]).read()
        cfg = f"{sysconfdir}/tickslab/tickslab.yaml"
        starts = re.findall(r"^ExecStart=(\S+) --config (\S+)$", unit, re.M)
        docs = re.findall(r"^Documentation=(.*)$", unit, re.M)
        doc_words = " ".join(docs).split()
        why = []
        if starts != [(f"{sbindir}/tickslabd", cfg)]:
            why.append(f"ExecStart= {starts}")
        if f"ExecReload={sbindir}/tickslabd --config {cfg} --check-config" not in unit:
            why.append("no ExecReload= checking the installed config")
        for page in ("man:tickslabd(8)", "man:tickslab(1)", "man:tickslab.yaml(5)"):
            if page not in doc_words:
                why.append(f"Documentation= lacks {page}")
        for w in doc_words:
            if w.startswith("file:") and w[5:] not in got:
                why.append(f"Documentation= names {w}, not installed")
        if why:
            fail(name, "; ".join(why))
        else:
            ok(name)

    name = "installed_config_is_the_shipped_one_and_an_edited_one_is_kept"
    cfg_path = f"{root}{sysconfdir}/tickslab/tickslab.yaml"
    shipped = open(os.path.join(src, "config", "tickslab.yaml")).read()
    if os.path.exists(cfg_path) and open(cfg_path).read() == shipped:
        with open(cfg_path, "a") as f:
            f.write("# edited by the operator\n")
        r = run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", root])
        kept = open(cfg_path).read()
        if r.returncode == 0 and kept.endswith("# edited by the operator\n"):
            ok(name)
        else:
            fail(name, f"exit {r.returncode}, the edit {'kept' if kept != shipped else 'lost'}")
    else:
        fail(name, f"{cfg_path} absent or not config/tickslab.yaml")

    # The man pages.
    if not have_man:
        skip("man_pages_render_without_warnings", "the man pages were not built (scdoc not found at meson setup: apt-get install scdoc; or -Dman=disabled)")
    elif not shutil.which("man"):
        skip("man_pages_render_without_warnings", "man not installed (apt-get install man-db)")
    else:
        name = "man_pages_render_without_warnings"
        text = {}
        why = []
        for p, sec in pages.items():
            path = f"{root}{mandir}/{sec}/{p}"
            r = run(["man", "--warnings=w", "-l", path],  # w: every groff warning
                    env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8",
                             MANPAGER="cat", PAGER="cat"))
            text[p] = r.stdout
            if r.returncode != 0 or r.stderr.strip():
                why.append(f"{p}: exit {r.returncode}: {r.stderr.strip()[:500]}")
            elif "NAME" not in r.stdout or "SEE ALSO" not in r.stdout or "@" in re.sub(r"\S+@\S+", "", r.stdout):
                why.append(f"{p}: no NAME or SEE ALSO, or an @VAR@ left")
        if why:
            fail(name, "; ".join(why))
        else:
            ok(name)

        def words(t):  # rendered text, hyphenation and line breaks undone
            return re.sub(r"\s+", " ", re.sub(r"\u2010\s*|-\n\s*", "-", t))

        name = "tickslab_yaml_5_covers_every_config_key"
        keys = re.findall(r'\{KEY\("([a-z_.]+)"', open(os.path.join(src, "lib", "config.c")).read())
        page = words(text["tickslab.yaml.5"])
        missing = [k for k in keys if not re.search(r"(^|\s)" + re.escape(k) + r"(\s|$)", page)]
        if len(keys) < 30:
            fail(name, f"only {len(keys)} keys read from lib/config.c")
        elif missing:
            fail(name, f"keys of lib/config.c not in tickslab.yaml(5): {missing}")
        else:
            ok(name)

        name = "tickslab_yaml_5_marks_live_exactly_the_keys_a_reload_applies"
        table = dict(re.findall(r'\{KEY\("([a-z_.]+)", *[A-Z_0-9]+, *([A-Z]+)',
                                open(os.path.join(src, "lib", "config.c")).read()))
        scd = open(os.path.join(src, "man", "tickslab.yaml.5.scd")).read().replace("\\_", "_")
        heads = dict(re.findall(r"^\*([a-z_.]+)\* \((.*)\)$", scd, re.M))
        wrong = [k for k, g in table.items()
                 if k not in heads or (("live" in heads[k].split(", ")) != (g != "FIXED"))]
        if len(table) < 30 or wrong:
            fail(name, f"{len(table)} keys; marked wrong or without a heading: {wrong}")
        else:
            ok(name)

        name = "tickslab_1_covers_every_command_and_option"
        tickslab = os.path.join(build, "cli", "tickslab")
        usage = run([tickslab, "--help"]).stdout
        commands = re.findall(r"^  ([a-z]+)\b", usage.split("Commands:")[1].split("Options")[0], re.M)
        page = words(text["tickslab.1"])
        missing = [c for c in commands if not re.search(r"(^|\s)" + c + r"\b", page)]
        for c in commands:
            if c == "help":
                continue
            h = run([tickslab, c, "--help"]).stdout
            for o in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-o)\b", h))):
                if o in ("--help", "--connect", "--config", "--socket", "--timeout"):
                    continue
                if o not in page:
                    missing.append(f"{c} {o}")
        for o in re.findall(r"^  (?:-\w, )?(--[a-z-]+)", usage.split("Options")[1], re.M):
            if o not in page:
                missing.append(o)
        if len(commands) < 10:
            fail(name, f"only {len(commands)} commands read from tickslab --help")
        elif missing:
            fail(name, f"not in tickslab(1): {missing}")
        else:
            ok(name)

        name = "tickslabd_8_covers_every_option"
        h = run([os.path.join(build, "daemon", "tickslabd"), "--help"]).stdout
        page = words(text["tickslabd.8"])
        missing = [o for o in re.findall(r"^  (?:-\w, )?\s*(--[a-z-]+)", h, re.M) if o not in page]
        if missing:
            fail(name, f"not in tickslabd(8): {missing}")
        else:
            ok(name)

    # The bash completion, sourced into a bash that completes "tickslab ".
    name = "bash_completion_offers_every_command_and_their_options"
    comp = f"{root}{completiondir}/tickslab"
    usage = run([os.path.join(build, "cli", "tickslab"), "--help"]).stdout
    commands = re.findall(r"^  ([a-z]+)\b", usage.split("Commands:")[1].split("Options")[0], re.M)
    script = f"""
source '{comp}'
complete_line() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _tickslab; echo "${{COMPREPLY[*]}}"; }}
complete_line tickslab ''
complete_line tickslab stats --
complete_line tickslab --socket /tmp/x gen --ext
complete_line tickslab export AAPL 0 1 --format ''
"""
    r = run(["bash", "--norc", "-c", script])
    lines = r.stdout.split("\n")
    if r.returncode != 0 or len(lines) < 4:
        fail(name, f"bash exit {r.returncode}: {r.stderr[:500]}")
    else:
        why = []
        if sorted(lines[0].split()) != sorted(commands):
            why.append(f"commands {lines[0].split()} against {commands}")
        if not {"--json", "--slabs", "--prometheus", "--text", "--socket"} <= set(lines[1].split()):
            why.append(f"stats -- gives {lines[1]}")
        if set(lines[2].split()) != {"--extra-fields", "--extra-share"}:
            why.append(f"gen --ext gives {lines[2]}")
        if set(lines[3].split()) != {"msgpack", "csv", "jsonl"}:
            why.append(f"--format gives {lines[3]}")
        if why:
            fail(name, "; ".join(why))
        else:
            ok(name)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if failed else 0)
