"""The AWS side: the Batch adapter behind a Protocol (pagination, error taxonomy,
rate control) and the DynamoDB leader lease.
"""
