"""The book's machinery: run the chapter notebooks with papermill (``bbam-lite book run``) and render
them offline with Jupyter Book 1.x (``bbam-lite book build``).

* :mod:`.params`  -- notebook parameters from the command line, parsed without ``eval`` and checked;
* :mod:`.runner`  -- executes ``notebooks/NN-slug.ipynb`` in order, resumable, one line per notebook;
* :mod:`.render`  -- stages the book with the executed chapters and builds HTML with local MathJax;
* :mod:`.command` -- the ``bbam-lite book`` subcommands.
"""
