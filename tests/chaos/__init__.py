"""The chaos suite: referrals sent continuously between member nodes through the public API
while node processes, nats-servers, PostgreSQL and leaf links fail at random; then heal, wait
for quiescence and check that nothing acknowledged was lost, duplicated or left stuck.

``python -m tests.chaos`` (``make chaos``) runs it at length and writes its figures to
``bench-results/``; ``test_under_faults.py`` is its short version in the normal suite.
"""
