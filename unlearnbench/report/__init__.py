"""The report layer, all generated from the tidy results: the leaderboard's tables (assembled in ``tables``, one
module per family: ``quality``, ``judges``, ``cost``, ``robustness``, ``provenance``, ``tuning``; each cell a
``cells.Stat``), its figures (``figures``), the Markdown and README block (``page``) and the HTML page
(``html_page``); ``unlearnbench table``'s per-setting table (``settings``). ``frames`` is the bottom: which rows
each of them reads, in which order, under which labels."""
