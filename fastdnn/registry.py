"""Name -> class/function registries: how string names in `compile` and layers resolve."""


class Registry:
    """A named table of things that can be looked up by string.

    Parameters
    ----------
    kind : str
        What the registry holds ("activation", "loss", ...), used in error messages.
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}
        self._canonical = {}

    def register(self, name, *aliases):
        """Decorator: register ``obj`` under ``name`` and any ``aliases``."""

        def decorator(obj):
            for key in (name, *aliases):
                if key in self._entries:
                    raise ValueError(f"{self.kind} {key!r} is already registered")
                self._entries[key] = obj
            self._canonical[name] = obj
            return obj

        return decorator

    def lookup(self, name, argument=None):
        """Return what is registered under ``name``; an unknown name lists the valid ones.

        ``argument`` is the caller's parameter name, which errors start with (default: the kind).
        """
        argument = argument or self.kind
        if not isinstance(name, str):
            raise TypeError(f"{argument}: expected a {self.kind} name (str), received {type(name).__name__}")
        key = name.strip().lower()
        try:
            return self._entries[key]
        except KeyError:
            raise ValueError(
                f"{argument}: unknown {self.kind} {name!r}; valid names are: {', '.join(self.names(aliases=True))}"
            ) from None

    def resolve(self, identifier, instance_type, description, argument=None):
        """An instance from ``identifier``: an ``instance_type`` as is, a name (default arguments), or a
        config dict ``{"name": ..., **arguments}``; ``description`` names the accepted type in errors,
        which start with ``argument`` (default: the kind).
        """
        argument = argument or self.kind
        if isinstance(identifier, instance_type):
            return identifier
        if isinstance(identifier, dict):
            config = dict(identifier)
            return self.lookup(config.pop("name", None), argument)(**config)
        if isinstance(identifier, str):
            return self.lookup(identifier, argument)()
        received = type(identifier).__name__
        raise TypeError(
            f"{argument}: expected a name ({', '.join(self.names(aliases=True))}) or {description}, "
            f"received {identifier!r:.60} ({received})"
        )

    def names(self, aliases=False):
        """Sorted registered names (canonical only, unless ``aliases``)."""
        return sorted(self._entries if aliases else self._canonical)

    def canonical_items(self):
        """``(name, obj)`` for each canonical name, sorted by name."""
        return sorted(self._canonical.items())

    def __contains__(self, name):
        return isinstance(name, str) and name.strip().lower() in self._entries
