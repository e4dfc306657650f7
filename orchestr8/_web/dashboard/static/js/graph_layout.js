// Where the graph's nodes go, left to right. Dagre (vendored) for graphs a person reads node by
// node; above DAGRE_LIMIT nodes a layered layout of our own — ranks by longest path, one
// barycentre pass to order each rank, tall ranks wrapped into columns — which lays out 10,000
// steps in milliseconds where dagre takes many seconds.

import dagre from "../vendor/dagre-3.1.4.esm.js";

export const NODE_WIDTH = 184;
export const NODE_HEIGHT = 62;
export const RANK_GAP = 64;
export const ROW_GAP = 16;
export const MARGIN = 16;
/** Above this many nodes the layered layout replaces dagre. */
export const DAGRE_LIMIT = 300;
/** A rank with more nodes than this wraps into several columns (layered layout). */
export const MAX_ROWS = 40;

/**
 * Lay out `nodes` (the graph document's, with `id` and `depends_on`) left to right:
 * {kind: "dagre"|"layered", positions: Map(id → {x, y} top-left, plus `rank` in the layered
 * layout, whose tall ranks wrap into several sub-columns), edges: [{from, to, points?}], width, height}.
 */
export function layout(nodes) {
  return nodes.length > DAGRE_LIMIT ? layered(nodes) : withDagre(nodes);
}

/** The edges between known nodes: one per dependency, from the dependency to the step. */
function edgesOf(nodes, known) {
  const edges = [];
  for (const node of nodes) {
    for (const from of node.depends_on) if (known.has(from)) edges.push({ from, to: node.id });
  }
  return edges;
}

/** Dagre's layout (network-simplex ranks, crossing reduction, routed edges). */
export function withDagre(nodes) {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: ROW_GAP, ranksep: RANK_GAP, marginx: MARGIN, marginy: MARGIN });
  graph.setDefaultEdgeLabel(() => ({}));
  const known = new Set(nodes.map((node) => node.id));
  for (const node of nodes) graph.setNode(node.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  const edges = edgesOf(nodes, known);
  for (const edge of edges) graph.setEdge(edge.from, edge.to);
  dagre.layout(graph);
  const positions = new Map();
  for (const node of nodes) {
    const placed = graph.node(node.id);
    positions.set(node.id, { x: placed.x - NODE_WIDTH / 2, y: placed.y - NODE_HEIGHT / 2 });
  }
  for (const edge of edges) edge.points = graph.edge(edge.from, edge.to).points;
  const size = graph.graph();
  return { kind: "dagre", positions, edges, width: size.width || MARGIN * 2, height: size.height || MARGIN * 2 };
}

/** Each node's rank: the longest path to it from a node without dependencies (Kahn's order). */
function ranksOf(nodes, known) {
  const rank = new Map(nodes.map((node) => [node.id, 0]));
  const waiting = new Map();
  const dependents = new Map();
  for (const node of nodes) {
    const deps = node.depends_on.filter((id) => known.has(id));
    waiting.set(node.id, deps.length);
    for (const dep of deps) {
      if (!dependents.has(dep)) dependents.set(dep, []);
      dependents.get(dep).push(node.id);
    }
  }
  const ready = nodes.filter((node) => waiting.get(node.id) === 0).map((node) => node.id);
  for (let index = 0; index < ready.length; index++) {
    const id = ready[index];
    for (const next of dependents.get(id) || []) {
      rank.set(next, Math.max(rank.get(next), rank.get(id) + 1));
      waiting.set(next, waiting.get(next) - 1);
      if (waiting.get(next) === 0) ready.push(next);
    }
  }
  return rank;
}

/** The layered layout: ranks as columns, each ordered by its dependencies' mean position. */
export function layered(nodes) {
  const known = new Set(nodes.map((node) => node.id));
  const rank = ranksOf(nodes, known);
  const columns = [];
  for (const node of nodes) {
    const r = rank.get(node.id);
    while (columns.length <= r) columns.push([]);
    columns[r].push(node);
  }
  const order = new Map();
  columns.forEach((column, r) => {
    if (r > 0) {
      const centre = (node) => {
        const placed = node.depends_on.filter((id) => order.has(id)).map((id) => order.get(id));
        return placed.length ? placed.reduce((sum, value) => sum + value, 0) / placed.length : Infinity;
      };
      const keyed = column.map((node, index) => ({ node, index, key: centre(node) }));
      keyed.sort((a, b) => a.key - b.key || a.index - b.index);
      columns[r] = keyed.map((entry) => entry.node);
    }
    columns[r].forEach((node, index) => order.set(node.id, index));
  });
  const tallest = Math.min(MAX_ROWS, Math.max(1, ...columns.map((column) => column.length)));
  const height = MARGIN * 2 + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP;
  const positions = new Map();
  let x = MARGIN;
  for (const [r, column] of columns.entries()) {
    const wraps = Math.max(1, Math.ceil(column.length / MAX_ROWS));
    column.forEach((node, index) => {
      const sub = Math.floor(index / MAX_ROWS);
      const rows = Math.min(MAX_ROWS, column.length - sub * MAX_ROWS);
      const offset = ((tallest - rows) * (NODE_HEIGHT + ROW_GAP)) / 2;
      positions.set(node.id, {
        rank: r,
        x: x + sub * (NODE_WIDTH + RANK_GAP / 2),
        y: MARGIN + offset + (index % MAX_ROWS) * (NODE_HEIGHT + ROW_GAP),
      });
    });
    x += wraps * NODE_WIDTH + (wraps - 1) * (RANK_GAP / 2) + RANK_GAP;
  }
  const width = Math.max(MARGIN * 2, x - RANK_GAP + MARGIN);
  return { kind: "layered", positions, edges: edgesOf(nodes, known), width, height };
}
