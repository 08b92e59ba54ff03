"""sf_pipeline: Salesforce objects into Snowflake (or DuckDB) through Bulk API 2.0, dlt and Dagster."""
