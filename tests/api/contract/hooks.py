"""Schemathesis hooks for botwave's contract test (tests/api/contract.rs).

The test runs schemathesis as one user (the "first" user) after seeding a second user whose
email, user id, API key name and prefix, message text, phone number and webhook URL are
recognisable markers. The check below fails any response to the first user that contains one
of them: one user must never be shown another's data. Admin operations are left out, because
showing every account is what they are for (the first user is an admin so that they are
fuzzed at all).
"""

import os

import schemathesis

MARKERS = [m for m in os.environ.get("BOTWAVE_FUZZ_FOREIGN_MARKERS", "").split("\n") if m]
if not MARKERS:
    raise RuntimeError("BOTWAVE_FUZZ_FOREIGN_MARKERS names no markers: the isolation check would be empty")


@schemathesis.check
def no_other_users_data(ctx, response, case):
    """No answer to the first user contains the second user's data."""
    if case.operation.path.startswith("/api/admin/"):
        return None
    text = response.content.decode("utf-8", errors="replace") if response.content else ""
    for name, value in response.headers.items():
        text += f"\n{name}: {value}"
    # An answer may repeat what the request said (schemathesis reuses values it saw in the
    # admin listings): only data the request did not carry counts.
    sent = f"{response.request.url}\n{response.request.body or ''}"
    found = [marker for marker in MARKERS if marker in text and marker not in sent]
    if found:
        raise AssertionError(
            f"{case.operation.label} answered another user's data: {', '.join(found)}"
        )
    return None


FIRST_USER_ID = os.environ.get("BOTWAVE_FUZZ_FIRST_USER_ID", "")


@schemathesis.hook
def filter_case(ctx, case):
    """Keeps the run's own login token alive: an admin setting the fuzzing account's password
    voids it (by design), and every later request would only test the 401."""
    if case.operation.path == "/api/admin/users/{id}/password":
        return (case.path_parameters or {}).get("id") != FIRST_USER_ID
    return True
