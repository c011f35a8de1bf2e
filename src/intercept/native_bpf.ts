/**
 * The addon's `bpf` export (native/bpf/): the libbpf loader of the sockmap accelerator and of
 * its connect4/6 + getsockopt capture, and the SO_ORIGINAL_DST helper. Typed here rather than in src/native.ts so interception stays in
 * its own folder; loaded through the same loadNative().
 */
import { loadNative, type SockAddr } from '../native.js';

export interface SockmapOptions {
  /** cgroup v2 directory: sockets of its processes (and descendants) are accelerated. */
  readonly cgroup: string;
  /** Must not exist yet; its parent must be on a bpffs. */
  readonly pinDir: string;
  /** Only connections with one end on one of these ports (at most 16). Empty: all loopback TCP. */
  readonly ports?: readonly number[];
  /** Never connections with one end on one of these ports (at most 16); never captured either. */
  readonly excludePorts?: readonly number[];
  /**
   * Transparent capture (bpf/capture.bpf.c): TCP connects of the cgroup to non-local addresses
   * go to 127.0.0.1:capturePort ([::1] for IPv6) and SO_ORIGINAL_DST answers the address asked
   * for. 0 or absent: no capture.
   */
  readonly capturePort?: number;
  /** Connects by these uids/gids are never captured (the sidecar's own; at most 8 each). */
  readonly exemptUids?: readonly number[];
  readonly exemptGids?: readonly number[];
  /**
   * Accelerate the sidecar's own loopback connects (by the exempt uids/gids; needs one) whatever
   * their port, and the peer of each when it is in the cgroup: connect4/6 note them, with or
   * without capture.
   */
  readonly sidecarAccel?: boolean;
  /**
   * Captured connections whose original destination port is one of these (at most 16) stay on
   * TCP between app and sidecar: bulk streams of small writes lose throughput under sk_msg.
   */
  readonly bulkPorts?: readonly number[];
  /**
   * Bulk detection in the sk_msg program: a sending direction that sends bulkDetectBytes within
   * bulkDetectWindowNs with no reply from the other end in between, in messages averaging under
   * bulkDetectMaxMsg bytes, is switched to plain TCP for good. Any of them 0 or absent: off.
   */
  readonly bulkDetectBytes?: number;
  readonly bulkDetectWindowNs?: number;
  readonly bulkDetectMaxMsg?: number;
  /**
   * Inbound capture (sk_lookup, the caller's network namespace): TCP connections from other
   * hosts to these app ports (at most 16) are accepted by the listening socket `inboundFd` of
   * process `inboundPid` (the sidecar's inbound listener) instead of the app's.
   */
  readonly inboundPorts?: readonly number[];
  readonly inboundPid?: number;
  readonly inboundFd?: number;
}

/** What enableSockmap installed beyond the accelerator. */
export interface SockmapEnabled {
  readonly capture: boolean;
  /** connect6 is attached too (false when the kernel rejected it; IPv4 capture still works). */
  readonly captureIpv6: boolean;
  /** The sk_lookup program is attached to the network namespace (inboundPorts given). */
  readonly inbound: boolean;
  /** The sidecar's loopback connects are noted and accelerated (sidecarAccel given). */
  readonly sidecarAccel: boolean;
}

/** A captured connection still open: the app's end, and where it asked to go. */
export interface CapturedConnection {
  readonly family: 'IPv4' | 'IPv6';
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly sidecarAddress: string;
  readonly sidecarPort: number;
  readonly originalFamily: 'IPv4' | 'IPv6';
  readonly originalAddress: string;
  readonly originalPort: number;
  readonly netnsCookie: bigint;
}

/** A socket in the SOCKHASH, seen from its own side. */
export interface SockmapSocket {
  readonly family: 'IPv4' | 'IPv6';
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly netnsCookie: bigint;
}

/** What is pinned under a pin directory, read back from the kernel. */
export interface SockmapKernelStatus {
  /** Pin names present (sockops_link, sockops_prog, redirect_prog, sock_hash, stats). */
  readonly pins: readonly string[];
  readonly linkAttached: boolean;
  /** The cgroup's id (its inode number on the cgroup2 mount); 0 when not attached. */
  readonly cgroupId: number;
  readonly sockopsProgId: number;
  readonly redirectProgId: number;
  readonly sockMapId: number;
  readonly statsMapId: number;
  /** The sk_msg program is attached to sock_hash (false on kernels < 5.19, which cannot tell). */
  readonly verdictAttached: boolean;
  readonly sockets: readonly SockmapSocket[];
  /** Counters kept by the programs (bpf/intercept.h `enum strait_stat`), summed over CPUs. */
  readonly stats: {
    socketsAdded: number;
    socketsSkipped: number;
    msgRedirected: number;
    msgPassed: number;
    connectCaptured: number;
    connectExempt: number;
    origDstAnswered: number;
    /** Captured sockets left on TCP because their original port is a bulk port. */
    socketsBulk: number;
    /** Inbound connections handed to the sidecar's inbound listener by sk_lookup. */
    inboundSteered: number;
    /** Sending directions the bulk detector switched to TCP (one socket each, for good). */
    socketsSwitchedToTcp: number;
    /** Messages those sockets then sent through TCP. */
    msgSwitchedToTcp: number;
    /** Switched sockets then taken out of the sockmap (their peer never sent to them). */
    socketsUnmapped: number;
    /** Loopback connects by the sidecar's identity, noted by connect4/6 for acceleration. */
    sidecarConnects: number;
    /** Sidecar sockets taken out of the sockmap at their first ACK: the peer was outside the cgroup. */
    sidecarUnmapped: number;
  };
  /** The capture programs' links (all false when capture was not enabled; connect4/6 also serve sidecarAccel) and open captures. */
  readonly capture: {
    readonly connect4Attached: boolean;
    readonly connect6Attached: boolean;
    readonly getsockoptAttached: boolean;
    /** getpeername4 (the app sees the address it connected to); getpeername6 goes with connect6. */
    readonly getpeernameAttached: boolean;
    /** sk_lookup inbound capture is attached to its network namespace. */
    readonly inboundAttached: boolean;
    /** Records between connect() and the SYN, or of connects that failed before it. */
    readonly pending: number;
    readonly connections: readonly CapturedConnection[];
  };
}

export interface BpfProbe {
  readonly sockops: boolean;
  readonly skMsg: boolean;
  readonly sockhash: boolean;
  /** Why loading Strait's own programs failed; null when both loaded. */
  readonly loadError: { code: string; message: string } | null;
  /** Why loading the capture programs (connect4 + getsockopt) failed; null when they loaded. */
  readonly captureLoadError: { code: string; message: string } | null;
  /** connect6 loaded as well. */
  readonly captureIpv6: boolean;
}

interface BpfCommon {
  /** SO_ORIGINAL_DST of an accepted socket; null when it was not redirected. */
  originalDst(fd: number): SockAddr | null;
}

/** Built with BPF support. Async calls reject with an Error carrying `code` (errno name). */
export interface BpfAvailable extends BpfCommon {
  readonly available: true;
  readonly unavailableReason: null;
  /** Probes the program and map types and loads both programs for real (nothing attached). */
  probe(): Promise<BpfProbe>;
  /** Mounts a bpffs on `path` unless one is there; resolves true when it mounted one. */
  ensureBpffs(path: string): Promise<boolean>;
  enableSockmap(opts: SockmapOptions): Promise<SockmapEnabled>;
  /** Detaches and unpins whatever exists under pinDir; resolves with the pin names removed. */
  disableSockmap(pinDir: string): Promise<string[]>;
  /** null when nothing is pinned at pinDir. */
  sockmapStatus(pinDir: string): SockmapKernelStatus | null;
}

export interface BpfUnavailable extends BpfCommon {
  readonly available: false;
  readonly unavailableReason: string;
}

export type NativeBpf = BpfAvailable | BpfUnavailable;

/** The addon's bpf export; throws NativeLoadError when the addon itself is missing. */
export function nativeBpf(): NativeBpf {
  return (loadNative() as unknown as { bpf: NativeBpf }).bpf;
}
