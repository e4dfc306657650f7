"""Ready-made orchestr8 agents, registered as `orchestr8.agents` entry points: llm, research, http.

Each agent lives in its own module and imports its heavy dependencies (such as `anthropic`) only
when it runs, so importing this package, building agents and validating workflows stay fast.
"""
