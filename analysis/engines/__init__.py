"""Other engines for the heavy stage: Apache Spark (``pip install 'ringscope[spark]'``)."""
