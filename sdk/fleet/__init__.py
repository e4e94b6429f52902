"""From the workstation to a fleet of cameras: signed releases and the camera's agent.

``release`` describes a set of verified bundles as a release; ``repository`` keeps releases
in a TUF repository (python-tuf: root, targets, snapshot and timestamp roles, each signed,
with expiry and monotonic versions), served by any static HTTP server; ``rollout`` says which
cameras may take a release; the agent (``agent``) on each camera fetches what it can run,
checks it on its own backends, and switches between two slots (``slots``).
"""
