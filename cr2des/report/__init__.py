"""What people read: console tables, the answer-first headline, and figures.
"""
