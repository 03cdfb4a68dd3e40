"""The bottom layer: readers of files, images and ids, and the row-type checks of a task's ``[columns]``.
Nothing here knows a task or a benchmark."""
