from __future__ import annotations

from pathlib import Path

import pytest

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.workspaces.git import RepositoryError, find_credential, strip_userinfo
from opencode_mcp_gateway.workspaces.repos import check_ref_name, check_repository

ALLOW = ["https://git.example.com/team/", "http://mirror.internal:8080/git"]


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/team/app.git",
        "https://git.example.com/team/sub/app",
        "http://mirror.internal:8080/git/app.git",
        "https://bot:tok@git.example.com/team/app.git",
    ],
)
def test_urls_under_the_allowlist_pass(url: str) -> None:
    assert check_repository(url, ALLOW) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://git.example.com/other/app.git", "not allowed"),
        ("https://git.example.com/teamx/app.git", "not allowed"),  # a prefix, not a string prefix
        ("https://git.example.com.evil.net/team/app.git", "not allowed"),
        ("http://git.example.com/team/app.git", "not allowed"),  # http only where the list says http
        ("http://mirror.internal:8080/gitx/app.git", "not allowed"),
        ("https://git.example.com/team/../secret/app.git", "'..'"),
        ("https://git.example.com/team/%2e%2e/secret.git", "encoded"),
        ("file:///srv/git/app.git", "file://"),
        ("/srv/git/app.git", "local paths"),
        ("ext::sh -c id", "ext::"),
        ("-uhttps://git.example.com/team/app.git", "transports are refused"),
        ("ssh://git@git.example.com/team/app.git", "transports are refused"),
    ],
)
def test_unsafe_or_foreign_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(RepositoryError) as err:
        check_repository(url, ALLOW)
    assert says in str(err.value)


def test_credentials_in_a_refused_url_are_not_echoed() -> None:
    with pytest.raises(RepositoryError) as err:
        check_repository("https://bot:sekrit@evil.example/x.git", ALLOW)
    assert "sekrit" not in str(err.value) and "evil.example/x.git" in str(err.value)


def test_without_an_allowlist_the_error_names_the_setting() -> None:
    with pytest.raises(RepositoryError, match="REPOSITORY_ALLOWLIST"):
        check_repository("https://git.example.com/team/app.git", [])


@pytest.mark.parametrize("name", ["main", "v1.2.0", "feature/login", "release-2024_01", "a1b2c3d"])
def test_plain_names_pass(name: str) -> None:
    assert check_ref_name(name, "ref") == name


@pytest.mark.parametrize(
    "name", ["-f", "--upload-pack=x", "a..b", "a//b", "a/", ".hidden", "x/.y", "x.lock", "HEAD", "a b", "a@{1}", "a~1"]
)
def test_option_like_or_odd_names_are_refused(name: str) -> None:
    with pytest.raises(RepositoryError, match="not a valid name"):
        check_ref_name(name, "branch")


def test_a_branch_is_a_short_name_while_a_ref_may_be_full() -> None:
    assert check_ref_name("refs/heads/main", "ref") == "refs/heads/main"
    with pytest.raises(RepositoryError, match="not a valid name"):
        check_ref_name("refs/heads/mine", "branch")


def test_credentials_file_most_specific_entry_wins(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text(
        "https://any:general@git.example.com\n"
        "https://team:specific@git.example.com/team\n"
        "https://x:other-port@git.example.com:8443\n"
    )
    pick = find_credential("https://git.example.com/team/app.git", str(creds))
    assert pick is not None and (pick.username, pick.password) == ("team", "specific")
    pick = find_credential("https://git.example.com/teamx/app.git", str(creds))
    assert pick is not None and pick.password == "general"
    assert find_credential("https://elsewhere.example.com/a.git", str(creds)) is None
    assert find_credential("http://git.example.com/team/a.git", str(creds)) is None, "the scheme must match"


def test_an_unreadable_credentials_file_is_named_not_shown(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="GIT_CREDENTIALS_FILE"):
        find_credential("https://git.example.com/a.git", str(tmp_path / "missing"))


def test_userinfo_is_stripped_from_any_text() -> None:
    text = "fatal: unable to access 'https://bot:tok@git.example.com/a.git/': 403"
    assert strip_userinfo(text) == "fatal: unable to access 'https://git.example.com/a.git/': 403"


def test_settings_check_the_allowlist_and_author(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPOSITORY_ALLOWLIST", "https://git.example.com/team/, https://u:p@x.example/")
    with pytest.raises(ConfigError, match="REPOSITORY_ALLOWLIST") as err:
        load_settings()
    assert "u:p" not in str(err.value) and "x.example" in str(err.value)
    monkeypatch.setenv("REPOSITORY_ALLOWLIST", "https://git.example.com/team/")
    monkeypatch.setenv("GIT_COMMIT_AUTHOR", "no email")
    with pytest.raises(ConfigError, match="GIT_COMMIT_AUTHOR"):
        load_settings()
    monkeypatch.setenv("GIT_COMMIT_AUTHOR", "Bot <bot@example.com>")
    settings = load_settings(workspace_root="/srv/work")
    assert settings.git_author == ("Bot", "bot@example.com")
    assert settings.repository_allow_list == ["https://git.example.com/team/"]
    assert settings.workspaces_path == "/srv/work/.opencode-workspaces"
