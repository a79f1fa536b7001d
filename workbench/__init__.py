"""The analyst's workbench: a Streamlit app over the application layer (``filinglens app``).

Only this package imports streamlit. Pages live in ``views/``; ``main.py``
is the entry point ``streamlit run`` is given; ``launch.py`` builds that
command (loopback, headless, no usage statistics).
"""
