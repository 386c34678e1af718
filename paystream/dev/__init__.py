"""`paystream dev`: the whole pipeline in one terminal, on embedded defaults."""
