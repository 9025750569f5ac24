"""Sign-in, sessions and permissions."""

SESSIONS = {}


def sign_in(user, password):
    if password != user.get("password"):
        raise PermissionError("wrong password")
    token = f"token-{user['name']}"
    SESSIONS[token] = user
    return token


def sign_out(token):
    SESSIONS.pop(token, None)


def current_user(token):
    return SESSIONS.get(token)


def _hash(password):
    return sum(map(ord, password))
