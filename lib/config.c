/* config: work in progress */
