"""Who may act: roles, the principal a token stands for, and what a valid account is."""

from __future__ import annotations

from uuid import uuid4

import pytest

from shared.auth import Principal, Role, domain
from shared.auth.domain import Grant
from shared.errors import Invalid


def staff(*roles: Role) -> Principal:
    return Principal("amina", "user", "sanad", frozenset(roles))


class TestRoles:
    def test_a_principal_has_a_role_it_holds(self) -> None:
        assert staff(Role.FOCAL_POINT).has(Role.CASEWORKER, Role.FOCAL_POINT)

    def test_a_principal_lacks_roles_it_does_not_hold(self) -> None:
        assert not staff(Role.CASEWORKER).has(Role.ADMIN, Role.COORDINATOR)

    def test_asking_for_no_role_is_never_granted(self) -> None:
        assert not staff(Role.ADMIN).has()

    def test_an_admin_is_not_implicitly_a_caseworker(self) -> None:
        # Administrators manage accounts; case content stays with the case roles.
        assert not staff(Role.ADMIN).has(Role.CASEWORKER)


class TestWhomATokenStandsFor:
    def test_an_access_token_stands_for_its_user_in_the_nodes_org(self) -> None:
        grant = Grant(uuid4(), "access", "amina", Role.CASEWORKER, None, frozenset())
        assert domain.principal_for(grant, "sanad") == Principal(
            "amina", "user", "sanad", frozenset({Role.CASEWORKER})
        )

    def test_an_api_token_stands_for_a_system_of_its_own_org(self) -> None:
        token_id = uuid4()
        grant = Grant(token_id, "api", None, None, "amal", frozenset({Role.FOCAL_POINT}))
        principal = domain.principal_for(grant, "secretariat")
        assert principal == Principal(
            f"token:{token_id}", "system", "amal", frozenset({Role.FOCAL_POINT})
        )


class TestAccountRules:
    @pytest.mark.parametrize("username", ["amina", "a.benali", "focal_2", "x-y"])
    def test_ordinary_usernames_are_accepted(self, username: str) -> None:
        assert domain.check_username(username) == username

    @pytest.mark.parametrize("username", ["ab", "Amina", "2amina", "a b", "amina@ngo.ma", "a" * 41])
    def test_odd_usernames_are_refused_naming_the_field(self, username: str) -> None:
        with pytest.raises(Invalid) as refused:
            domain.check_username(username)
        assert refused.value.field == "username"

    def test_usernames_compare_without_case_or_spaces(self) -> None:
        assert domain.normalise_username("  Amina ") == "amina"

    def test_a_password_shorter_than_twelve_characters_is_refused(self) -> None:
        with pytest.raises(Invalid) as refused:
            domain.check_password("eleven char")
        assert refused.value.field == "password"
        assert domain.check_password("twelve chars") == "twelve chars"

    def test_an_unknown_role_is_refused_naming_the_field(self) -> None:
        with pytest.raises(Invalid) as refused:
            domain.check_role("superuser")
        assert refused.value.field == "role"


class TestApiTokenRules:
    def test_an_api_token_never_acts_as_an_administrator(self) -> None:
        with pytest.raises(Invalid) as refused:
            domain.check_api_token_roles([Role.CASEWORKER, Role.ADMIN])
        assert refused.value.field == "roles"

    def test_an_api_token_needs_a_role(self) -> None:
        with pytest.raises(Invalid, match="at least one role"):
            domain.check_api_token_roles([])

    def test_a_member_node_issues_tokens_for_its_own_org_only(self) -> None:
        assert domain.check_token_org("sanad", node_org="sanad", on_hub=False) == "sanad"
        with pytest.raises(Invalid) as refused:
            domain.check_token_org("amal", node_org="sanad", on_hub=False)
        assert refused.value.field == "org"

    def test_the_hub_issues_tokens_for_any_member(self) -> None:
        assert domain.check_token_org("amal", node_org="secretariat", on_hub=True) == "amal"
