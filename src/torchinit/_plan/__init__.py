"""Plans: rules for whole models, the per-parameter manifest, config files."""

from .init_functions import InitFunction, init_function_names, register_init_function
from .manifest import BlockEntry, Manifest, Record, last_manifest
from .module_types import register_module_type
from .plan import Plan
from .roles import ROLES, roles_of
from .rules import Rule
from .selectors import ParamInfo, Select

__all__ = ["Plan", "Rule", "Select", "Manifest", "last_manifest", "Record", "BlockEntry",
           "ParamInfo", "InitFunction", "register_init_function", "init_function_names",
           "register_module_type", "ROLES", "roles_of"]
