"""Helpers the notebooks call: overview tables (01–03), the ring picker (04), and the
headless runner behind ``make report``. They may use any step of the product."""
