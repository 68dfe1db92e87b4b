"""Secrets at rest: argon2id password hashes, re-hashed when the parameters change, and bearer
tokens that are recognisable, random, and stored only as digests."""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher

from shared.auth import passwords, tokens

# Small parameters keep these tests fast; the verdicts do not depend on them.
WEAK = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class TestPasswords:
    def test_a_password_is_stored_as_an_argon2id_hash(self) -> None:
        stored = passwords.hash_password("correct horse battery", WEAK)
        assert stored.startswith("$argon2id$")
        assert "correct horse battery" not in stored

    def test_the_right_password_matches_and_a_wrong_one_does_not(self) -> None:
        stored = passwords.hash_password("correct horse battery", WEAK)
        assert passwords.verify_password(stored, "correct horse battery", WEAK).ok
        assert not passwords.verify_password(stored, "correct horse battery!", WEAK).ok

    def test_a_damaged_hash_matches_nothing(self) -> None:
        assert not passwords.verify_password("$argon2id$garbage", "anything at all", WEAK).ok

    def test_a_hash_made_with_old_parameters_is_replaced_on_a_match(self) -> None:
        stored = passwords.hash_password("correct horse battery", WEAK)
        verdict = passwords.verify_password(stored, "correct horse battery")
        assert verdict.ok and verdict.rehash is not None
        assert not passwords.HASHER.check_needs_rehash(verdict.rehash)
        assert passwords.verify_password(verdict.rehash, "correct horse battery").ok

    def test_a_current_hash_is_left_alone(self) -> None:
        stored = passwords.hash_password("correct horse battery")
        assert passwords.verify_password(stored, "correct horse battery").rehash is None

    def test_a_wrong_password_never_triggers_a_rehash(self) -> None:
        stored = passwords.hash_password("correct horse battery", WEAK)
        assert passwords.verify_password(stored, "wrong horse battery").rehash is None


class TestTokens:
    def test_a_token_is_recognisable_and_well_formed(self) -> None:
        token = tokens.new_token()
        assert token.secret.startswith("rls_")
        assert tokens.is_well_formed(token.secret)

    def test_two_tokens_are_never_the_same(self) -> None:
        assert len({tokens.new_token().secret for _ in range(100)}) == 100

    def test_only_the_sha256_digest_is_meant_for_storage(self) -> None:
        token = tokens.new_token()
        assert token.digest == hashlib.sha256(token.secret.encode()).digest()
        assert token.secret not in repr(token)

    def test_a_bearer_header_yields_its_token(self) -> None:
        secret = tokens.new_token().secret
        assert tokens.bearer_of(f"Bearer {secret}") == secret
        assert tokens.bearer_of(f"bearer  {secret} ") == secret

    def test_other_schemes_and_foreign_tokens_yield_nothing(self) -> None:
        secret = tokens.new_token().secret
        assert tokens.bearer_of(f"Basic {secret}") is None
        assert tokens.bearer_of("Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig") is None
        assert tokens.bearer_of(f"Bearer {secret}x") is None
        assert tokens.bearer_of("Bearer") is None
