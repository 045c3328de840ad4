/* codec: work in progress */
