from genlab.errors import GenlabError


def check_split(split: str, allowed: tuple[str, ...]) -> str:
    if split not in allowed:
        raise GenlabError(f"split={split!r} is not one of {', '.join(allowed)} for this data set")
    return split
