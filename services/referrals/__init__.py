"""Referrals: closed-loop case referral between organisations (built in its own issue)."""
