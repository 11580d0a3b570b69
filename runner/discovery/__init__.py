"""Discovery, the instance's half: schedules, the phases chained through the ECC queue, status.

``schedule`` reads and checks schedule files and splits their ranges into Shazzam batches.
See docs/discovery.md.
"""
