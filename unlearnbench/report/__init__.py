"""The report layer: the leaderboard's tables (``tables``), figures (``figures``) and page and README
block (``page``), all generated from the tidy results."""
