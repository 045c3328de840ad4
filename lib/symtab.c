/* symtab: work in progress */
