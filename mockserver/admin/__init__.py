"""The admin API (`/__admin`, spec/admin.yaml): a family like the vendor APIs, with its own contract."""
