"""The pipeline: one module per DVC stage (check, download, prepare, baseline, train,
evaluate, report), the commands (predict, sweep, promote) and the library they share."""
