"""The pure spawn pipeline: admin config -> catalog -> a user's limits and menu ->
the validated selection -> the pod plan. Plain data in and out, no I/O, nothing
from the hub edge."""
