"""A job's spec, typed: each kind's options (the form's and the CLI's fields, options.py, declared with
fields.py) and the run spec a runner receives (run_spec.py), validated from the run's spec.yaml.

It lives in the engine so that the runners can take it as their argument; it imports no torch.
"""
