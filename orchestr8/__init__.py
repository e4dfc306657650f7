"""orchestr8: agent orchestration on trio — supervised actors, JSON workflows, resilience.

The public API is exactly what `__all__` lists; everything else lives in private modules. Names are
imported on first use (PEP 562), so `import orchestr8` and `orchestr8 --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._actor import Actor as Actor
    from ._actor import ActorEvent as ActorEvent
    from ._actor import ActorRef as ActorRef
    from ._actor import ActorStatistics as ActorStatistics
    from ._agent_registry import AgentRegistry as AgentRegistry
    from ._agents import Agent as Agent
    from ._agents import AgentContext as AgentContext
    from ._breaker import BreakerState as BreakerState
    from ._breaker import BreakerStatistics as BreakerStatistics
    from ._breaker import BreakerTransition as BreakerTransition
    from ._breaker import CircuitBreaker as CircuitBreaker
    from ._breaker import CircuitBreakerRegistry as CircuitBreakerRegistry
    from ._bus import BusStatistics as BusStatistics
    from ._bus import EventBus as EventBus
    from ._bus import SubscriberStatistics as SubscriberStatistics
    from ._codec import load_workflow as load_workflow
    from ._codec import parse_workflow as parse_workflow
    from ._codec import validate_inputs as validate_inputs
    from ._codec import validate_workflow_document as validate_workflow_document
    from ._codec import workflow_to_json as workflow_to_json
    from ._errors import ActorError as ActorError
    from ._errors import ActorStoppedError as ActorStoppedError
    from ._errors import AgentConfigurationError as AgentConfigurationError
    from ._errors import AgentError as AgentError
    from ._errors import AgentExitError as AgentExitError
    from ._errors import AskTimeoutError as AskTimeoutError
    from ._errors import AttemptTimeoutError as AttemptTimeoutError
    from ._errors import BulkheadFullError as BulkheadFullError
    from ._errors import CallStoppedError as CallStoppedError
    from ._errors import CircuitOpenError as CircuitOpenError
    from ._errors import DeadlineExceededError as DeadlineExceededError
    from ._errors import ExecutionError as ExecutionError
    from ._errors import ExecutionNotFoundError as ExecutionNotFoundError
    from ._errors import ExecutionStateError as ExecutionStateError
    from ._errors import ExecutionTimeoutError as ExecutionTimeoutError
    from ._errors import IdempotencyKeyReusedError as IdempotencyKeyReusedError
    from ._errors import InputValidationError as InputValidationError
    from ._errors import JournalError as JournalError
    from ._errors import MailboxFullError as MailboxFullError
    from ._errors import MissingSecretError as MissingSecretError
    from ._errors import NonRetryableError as NonRetryableError
    from ._errors import Orchestr8Error as Orchestr8Error
    from ._errors import OutputNotSerialisableError as OutputNotSerialisableError
    from ._errors import Problem as Problem
    from ._errors import RateLimitedError as RateLimitedError
    from ._errors import ReferenceResolutionError as ReferenceResolutionError
    from ._errors import ResilienceError as ResilienceError
    from ._errors import RetryableError as RetryableError
    from ._errors import SecretError as SecretError
    from ._errors import SecretsFileError as SecretsFileError
    from ._errors import SupervisorGaveUpError as SupervisorGaveUpError
    from ._errors import UnknownAgentError as UnknownAgentError
    from ._errors import WorkflowError as WorkflowError
    from ._errors import WorkflowValidationError as WorkflowValidationError
    from ._events import Event as Event
    from ._events import EventType as EventType
    from ._events import ExecutionState as ExecutionState
    from ._events import ExecutionStatus as ExecutionStatus
    from ._events import StepState as StepState
    from ._events import StepStatus as StepStatus
    from ._events import replay as replay
    from ._expressions import Reference as Reference
    from ._expressions import Template as Template
    from ._expressions import compile_template as compile_template
    from ._journal import ExecutionRecord as ExecutionRecord
    from ._journal import Journal as Journal
    from ._journal import open_journal as open_journal
    from ._limits import Bulkhead as Bulkhead
    from ._limits import BulkheadStatistics as BulkheadStatistics
    from ._limits import RateLimiter as RateLimiter
    from ._limits import RateLimiterStatistics as RateLimiterStatistics
    from ._pipeline import PipelineListener as PipelineListener
    from ._pipeline import call_with_policy as call_with_policy
    from ._policy import BulkheadPolicy as BulkheadPolicy
    from ._policy import CircuitBreakerPolicy as CircuitBreakerPolicy
    from ._policy import Policy as Policy
    from ._policy import RateLimitPolicy as RateLimitPolicy
    from ._policy import RetryPolicy as RetryPolicy
    from ._results import ExecutionResult as ExecutionResult
    from ._results import StepResult as StepResult
    from ._retry import is_retryable as is_retryable
    from ._runtime import ExecutionHandle as ExecutionHandle
    from ._runtime import Runtime as Runtime
    from ._runtime import open_runtime as open_runtime
    from ._runtime import run_workflow as run_workflow
    from ._runtime import tune_garbage_collection as tune_garbage_collection
    from ._secrets import Secrets as Secrets
    from ._serve import serve as serve
    from ._supervisor import ActorNameTakenError as ActorNameTakenError
    from ._supervisor import RestartBackoff as RestartBackoff
    from ._supervisor import Supervisor as Supervisor
    from ._supervisor import SupervisorStatistics as SupervisorStatistics
    from ._supervisor import open_supervisor as open_supervisor
    from ._web import create_app as create_app
    from ._workflow import AgentSpec as AgentSpec
    from ._workflow import Step as Step
    from ._workflow import Workflow as Workflow
    from ._workflow import workflow_schema as workflow_schema

_EXPORTS: dict[str, str] = {
    "Actor": "_actor",
    "ActorError": "_errors",
    "ActorEvent": "_actor",
    "ActorNameTakenError": "_supervisor",
    "ActorRef": "_actor",
    "ActorStatistics": "_actor",
    "ActorStoppedError": "_errors",
    "Agent": "_agents",
    "AgentConfigurationError": "_errors",
    "AgentContext": "_agents",
    "AgentError": "_errors",
    "AgentExitError": "_errors",
    "AgentRegistry": "_agent_registry",
    "AgentSpec": "_workflow",
    "AskTimeoutError": "_errors",
    "AttemptTimeoutError": "_errors",
    "BreakerState": "_breaker",
    "BreakerStatistics": "_breaker",
    "BreakerTransition": "_breaker",
    "Bulkhead": "_limits",
    "BulkheadFullError": "_errors",
    "BulkheadPolicy": "_policy",
    "BulkheadStatistics": "_limits",
    "BusStatistics": "_bus",
    "CallStoppedError": "_errors",
    "CircuitBreaker": "_breaker",
    "CircuitBreakerPolicy": "_policy",
    "CircuitBreakerRegistry": "_breaker",
    "CircuitOpenError": "_errors",
    "DeadlineExceededError": "_errors",
    "Event": "_events",
    "EventBus": "_bus",
    "EventType": "_events",
    "ExecutionError": "_errors",
    "ExecutionHandle": "_runtime",
    "ExecutionNotFoundError": "_errors",
    "ExecutionRecord": "_journal",
    "ExecutionResult": "_results",
    "ExecutionState": "_events",
    "ExecutionStateError": "_errors",
    "ExecutionStatus": "_events",
    "ExecutionTimeoutError": "_errors",
    "IdempotencyKeyReusedError": "_errors",
    "InputValidationError": "_errors",
    "Journal": "_journal",
    "JournalError": "_errors",
    "MailboxFullError": "_errors",
    "MissingSecretError": "_errors",
    "NonRetryableError": "_errors",
    "Orchestr8Error": "_errors",
    "OutputNotSerialisableError": "_errors",
    "PipelineListener": "_pipeline",
    "Policy": "_policy",
    "Problem": "_errors",
    "RateLimitPolicy": "_policy",
    "RateLimitedError": "_errors",
    "RateLimiter": "_limits",
    "RateLimiterStatistics": "_limits",
    "Reference": "_expressions",
    "ReferenceResolutionError": "_errors",
    "ResilienceError": "_errors",
    "RestartBackoff": "_supervisor",
    "RetryPolicy": "_policy",
    "RetryableError": "_errors",
    "Runtime": "_runtime",
    "SecretError": "_errors",
    "Secrets": "_secrets",
    "SecretsFileError": "_errors",
    "Step": "_workflow",
    "StepResult": "_results",
    "StepState": "_events",
    "StepStatus": "_events",
    "SubscriberStatistics": "_bus",
    "Supervisor": "_supervisor",
    "SupervisorGaveUpError": "_errors",
    "SupervisorStatistics": "_supervisor",
    "Template": "_expressions",
    "UnknownAgentError": "_errors",
    "Workflow": "_workflow",
    "WorkflowError": "_errors",
    "WorkflowValidationError": "_errors",
    "call_with_policy": "_pipeline",
    "compile_template": "_expressions",
    "create_app": "_web",
    "is_retryable": "_retry",
    "load_workflow": "_codec",
    "open_journal": "_journal",
    "open_runtime": "_runtime",
    "open_supervisor": "_supervisor",
    "parse_workflow": "_codec",
    "replay": "_events",
    "run_workflow": "_runtime",
    "serve": "_serve",
    "tune_garbage_collection": "_runtime",
    "validate_inputs": "_codec",
    "validate_workflow_document": "_codec",
    "workflow_schema": "_workflow",
    "workflow_to_json": "_codec",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'orchestr8' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, for completion and `help()`."""
    return list(__all__)
