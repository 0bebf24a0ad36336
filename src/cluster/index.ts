/**
 * Several sipctl nodes on one PostgreSQL database: change notifications and coalesced
 * reloads, the node registry and heartbeats, cluster-wide commands, `cluster status`.
 */
export { createNode, NODE_STORE_OPTIONS, type Node } from './node.js';
export { NodeTables, TableReloader, type ReloadResult, type StoreState } from './node-tables.js';
export { ClusterLink, defaultNodeName } from './link.js';
export {
  clusterStatus,
  forgetNode,
  STALE_AFTER_BEATS,
  type ClusterStatus,
  type NodeStatus,
  type NodeState,
  type NodeTableStatus,
} from './registry.js';
export { runOnCluster, CLUSTER_COMMANDS, type ClusterCommandReport, type NodeAnswer } from './commands.js';
export { sipctlVersion } from './version.js';
