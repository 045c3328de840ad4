/* slab: work in progress */
