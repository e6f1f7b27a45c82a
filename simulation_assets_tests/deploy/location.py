"""The project's code location as the deployment tests serve it: every definition, steps in the run process.

With Dagster's default multiprocess executor each step starts its own Python and imports the whole
project (2-10 s a process on this shared 2-core machine), which would dominate small runs. The
deployment docs recommend the same executor for this project's runs; nothing else is changed.
"""

import dagster as dg

import simulation_assets.definitions as project

defs = dg.Definitions.merge(project.defs, dg.Definitions(executor=dg.in_process_executor))
