"""`python -m capacity_planner.records`: the accuracy summary and table of docs/ACCURACY.md."""

from capacity_planner.records.report import main

main()
