/* stats: work in progress */
