"""Allocation computed while the Arrow path writes the rows: the same rules, environment tags and location
tags as ``rollups._allocate``, on whole columns, so that no row has to be written twice.

It covers the rules whose SQL has an exact equivalent here: tag rules (the tag's value is that text),
sub-account rules (equal text) and service-name rules (equal ignoring case, for ASCII text: PostgreSQL's
UPPER follows the database's locale beyond it). A resource rule (a PostgreSQL regular expression), a tag
key the ORM would read as a path (``a__b``) or an array index (digits), or a service name that is not
ASCII leave the file's allocation to the database, as before.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apps.catalog.models import Environment, Location

from .models import AllocationRule
from .rollups import ENV_TAGS, LOCATION_TAGS

COLUMNS = ["allocation_rule_id", "service_id", "environment_id", "location_id", "is_shared"]


class NotHere(Exception):
    """This file's allocation is left to the database."""


@dataclass
class Plan:
    rules: list[AllocationRule]
    envs: list[Environment]
    locations: dict[str, int]  # code -> location
    # tags text -> (the tag rules it meets, its environment's position or -1, its location or None)
    tag_matches: dict[str, tuple[np.ndarray, int, int | None]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> "Plan | None":
        """The enabled rules in order, the environments and the locations; None when this module cannot apply
        them. A plan with nothing to apply is ``empty``."""
        rules = list(AllocationRule.objects.filter(enabled=True).order_by("order", "pk"))
        for rule in rules:
            if rule.match == AllocationRule.Match.RESOURCE:
                return None
            if rule.match == AllocationRule.Match.TAG and ("__" in rule.tag_key or rule.tag_key.isdigit()):
                return None
            if rule.match == AllocationRule.Match.SERVICE_NAME and not rule.value.isascii():
                return None
        envs = list(Environment.objects.all())
        locations = dict(Location.objects.values_list("code", "pk"))
        return cls(rules=rules, envs=envs, locations=locations)

    @property
    def empty(self) -> bool:
        """Nothing to allocate: the columns stay empty."""
        return not self.rules and not self.envs and not self.locations

    def _tags(self, text: str) -> tuple[np.ndarray, int, int | None]:
        """Which tag rules a Tags value meets, the first environment its tags name (-1: none) and the location
        its location or store tag names (None: none)."""
        found = self.tag_matches.get(text)
        if found is None:
            tags = json.loads(text)
            if not isinstance(tags, dict):
                tags = {}
            hits = np.array(
                [
                    rule.match == AllocationRule.Match.TAG and tags.get(rule.tag_key) == rule.value
                    for rule in self.rules
                ],
                dtype=bool,
            )
            env = -1
            for n, candidate in enumerate(self.envs):
                names = (candidate.slug, candidate.name)
                if any(isinstance(tags.get(key), str) and tags[key] in names for key in ENV_TAGS):
                    env = n
                    break
            location = None
            for key in LOCATION_TAGS:
                code = tags.get(key)
                if isinstance(code, str) and code in self.locations:
                    location = self.locations[code]
                    break
            if len(self.tag_matches) > 50_000:
                self.tag_matches.clear()
            found = self.tag_matches[text] = (hits, env, location)
        return found

    def columns(self, n: int, tags, sub_account, service_name) -> tuple[list[Any], Any]:
        """The allocation keys of a block's rows (int64, null for none), in COLUMNS' order, and whether each
        row is shared."""
        encoded = pc.dictionary_encode(tags)
        texts = encoded.dictionary.to_pylist()
        matches = [self._tags(text) for text in texts]
        indices = encoded.indices  # null where the row has no tags
        rule_n = pa.nulls(n, pa.int32())
        upper_service = None
        for i in reversed(range(len(self.rules))):  # the first rule that matches is applied last
            rule = self.rules[i]
            if rule.match == AllocationRule.Match.TAG:
                per_text = pa.array([hits[i] for hits, _, _ in matches], pa.bool_())
                hit = pc.take(per_text, indices) if texts else pa.nulls(n, pa.bool_())
            elif rule.match == AllocationRule.Match.SUB_ACCOUNT:
                hit = pc.equal(sub_account, rule.value)
            else:  # service name, whatever the case
                if upper_service is None:
                    if not _ascii(service_name):
                        raise NotHere("a service name that is not ASCII")
                    upper_service = pc.ascii_upper(service_name)
                hit = pc.equal(upper_service, rule.value.upper())
            rule_n = pc.if_else(pc.fill_null(hit, False), pa.scalar(i, pa.int32()), rule_n)
        env_per_text = pa.array([env if env >= 0 else None for _, env, _ in matches], pa.int32())
        env_n = pc.take(env_per_text, indices) if texts else pa.nulls(n, pa.int32())
        location_per_text = pa.array([location for _, _, location in matches], pa.int64())
        by_location_tag = pc.take(location_per_text, indices) if texts else pa.nulls(n, pa.int64())

        def by_rule(value) -> Any:
            values = pa.array([value(rule) for rule in self.rules], pa.int64())
            return pc.take(values, rule_n) if len(self.rules) else pa.nulls(n, pa.int64())

        env_pks = pa.array([env.pk for env in self.envs], pa.int64())
        by_tag = pc.take(env_pks, env_n) if len(self.envs) else pa.nulls(n, pa.int64())
        shared = pa.array([rule.shared for rule in self.rules], pa.bool_())
        is_shared = pc.fill_null(pc.take(shared, rule_n), False) if len(self.rules) else pa.repeat(False, n)
        out = [
            by_rule(lambda r: r.pk),
            by_rule(lambda r: None if r.shared else r.service_id),
            pc.coalesce(by_rule(lambda r: r.environment_id), by_tag),
            pc.coalesce(by_rule(lambda r: r.location_id), by_location_tag),
        ]
        return out, is_shared


def _ascii(values) -> bool:
    valid = pc.drop_null(values)
    return not len(valid) or bool(pc.all(pc.string_is_ascii(valid)).as_py())
