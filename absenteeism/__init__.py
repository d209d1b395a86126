"""The shared core: one feature module, one raw schema, and what both the batch job and the server
need to run them the same way (config I/O, converters, online paths, parity)."""

from hamilton import registry as _hamilton_registry

# Hamilton imports a plugin for every installed library it knows (scikit-learn's pulls in matplotlib)
# the first time a decorator module is imported: most of every process's start-up. Its own switch,
# flipped here because this runs before any module of ours imports Hamilton's decorators or driver.
_hamilton_registry.disable_autoload()
# The one plugin the feature module needs, loaded before the module is imported: it registers the
# DataFrame and Series types that @extract_columns checks when it decorates and that @check_output's
# pandera validators are looked up by. `etl_job dag` needs graphviz only, which Hamilton imports
# itself when drawing.
_hamilton_registry.load_extension("pandas")
