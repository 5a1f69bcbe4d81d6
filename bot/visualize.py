"""`xingkong visualize`: the stories as one graph (Rasa's `rasa visualize`), written as a
self-contained HTML page (an SVG drawing, no scripts or network) or a Graphviz .dot file.

Stories that begin the same way share their nodes: the graph is the tree of story paths
from START, user turns as intents (with their entities), bot turns as actions, and END where
a story stops.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from bot.policies.story_graph import story_trajectories
from bot.project.domain import Domain
from bot.project.training_data import TrainingData
from bot.state.events import ACTION_LISTEN_NAME, ActionExecuted, UserUttered

_ROW_PX = 70
_COLUMN_PX = 190


@dataclass(slots=True)
class Node:
    label: str
    kind: str  # start, user, action, end
    children: list[Node] = field(default_factory=list)

    def child(self, label: str, kind: str) -> Node:
        for node in self.children:
            if node.label == label and node.kind == kind:
                return node
        node = Node(label, kind)
        self.children.append(node)
        return node


def story_tree(data: TrainingData, domain: Domain | None = None) -> Node:
    root = Node("START", "start")
    for trajectory in story_trajectories(data.stories, domain):
        node = root
        for event in trajectory.events:
            if isinstance(event, UserUttered):
                entities = [str(e.get("entity")) for e in event.entities]
                label = (event.intent_name or event.text or "?") + (
                    f" ({', '.join(entities)})" if entities else "")
                node = node.child(label, "user")
            elif isinstance(event, ActionExecuted) and event.name != ACTION_LISTEN_NAME:
                node = node.child(event.name or event.action_text or "?", "action")
        node.child("END", "end")
    return root


def _walk(root: Node) -> list[tuple[int, Node, Node | None]]:
    """(depth, node, parent) depth first."""
    out: list[tuple[int, Node, Node | None]] = []
    stack: list[tuple[int, Node, Node | None]] = [(0, root, None)]
    while stack:
        depth, node, parent = stack.pop()
        out.append((depth, node, parent))
        stack += [(depth + 1, c, node) for c in reversed(node.children)]
    return out


def to_dot(root: Node) -> str:
    ids = {id(n): f"n{i}" for i, (_, n, _) in enumerate(_walk(root))}
    lines = ["digraph stories {", "  rankdir=TB;", "  node [fontname=Helvetica fontsize=11];"]
    shapes = {"start": "Mdiamond", "end": "Msquare", "user": "box", "action": "ellipse"}
    for _, node, parent in _walk(root):
        label = node.label.replace('"', '\\"')
        style = ' style=filled fillcolor="#dbeafe"' if node.kind == "user" else ""
        lines.append(f'  {ids[id(node)]} [label="{label}" shape={shapes[node.kind]}{style}];')
        if parent is not None:
            lines.append(f"  {ids[id(parent)]} -> {ids[id(node)]};")
    return "\n".join(lines + ["}"]) + "\n"


def to_html(root: Node, title: str = "Stories") -> str:
    """The tree drawn top-down: each leaf gets a column, a node sits over its leaves."""
    columns: dict[int, float] = {}
    next_leaf = [0]

    def place(node: Node) -> float:
        if not node.children:
            columns[id(node)] = next_leaf[0]
            next_leaf[0] += 1
        else:
            spots = [place(c) for c in node.children]
            columns[id(node)] = (spots[0] + spots[-1]) / 2
        return columns[id(node)]

    place(root)
    walked = _walk(root)
    depth_of = {id(n): d for d, n, _ in walked}
    width = max(1, next_leaf[0]) * _COLUMN_PX + 40
    height = (max(depth_of.values()) + 1) * _ROW_PX + 40

    def xy(node: Node) -> tuple[float, float]:
        return columns[id(node)] * _COLUMN_PX + _COLUMN_PX / 2 + 20, \
            depth_of[id(node)] * _ROW_PX + 30

    colours = {"start": "#e5e7eb", "end": "#e5e7eb", "user": "#dbeafe", "action": "#fef3c7"}
    shapes = []
    for _, node, parent in walked:
        x, y = xy(node)
        if parent is not None:
            px, py = xy(parent)
            shapes.append(f'<line x1="{px:.0f}" y1="{py + 14:.0f}" x2="{x:.0f}" '
                          f'y2="{y - 14:.0f}" stroke="#9ca3af"/>')
    for _, node, _ in walked:
        x, y = xy(node)
        label = html.escape(node.label)
        shapes.append(f'<rect x="{x - 85:.0f}" y="{y - 14:.0f}" width="170" height="28" rx="'
                      f'{14 if node.kind == "action" else 3}" fill="{colours[node.kind]}" '
                      f'stroke="#6b7280"/><text x="{x:.0f}" y="{y + 4:.0f}" font-size="11" '
                      f'text-anchor="middle" font-family="Helvetica">{label}</text>')
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body>\n<h3 style='font-family:Helvetica'>{html.escape(title)}"
            " (blue: user intents, yellow: bot actions)</h3>\n"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">\n'
            + "\n".join(shapes) + "\n</svg>\n</body></html>\n")


def write_graph(data: TrainingData, domain: Domain, out: Path) -> Node:
    root = story_tree(data, domain)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_dot(root) if out.suffix == ".dot" else to_html(root), encoding="utf-8")
    return root
