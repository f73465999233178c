"""What decides beside the model: the rule language, allow/block lists, versioned rules and the
decision thresholds; the policy that applies them, their services, admin and list API."""
