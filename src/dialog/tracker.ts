/**
 * Dialogs (RFC 3261 §12) followed from the messages that pass the proxy — Kamailio's dialog
 * module. One entry per call: the initial INVITE creates it, keyed by Call-ID and the
 * caller's From tag (the half of the dialog id both sides know from the first message);
 * the callee's To tag completes it.
 *
 * - early: a 1xx with a To tag (§12.1.1); several To tags for one INVITE are forks, all
 *   early dialogs of this one call (§12.1: "forking");
 * - confirmed: the first 2xx (§12.1.1); later 2xx of other forks leave it as it is;
 * - ended: BYE from either side (§15), a non-2xx final to the initial INVITE (§12.3, the
 *   early dialogs end with it), CANCEL (§9, it ends with the 487 that follows, or soon after),
 *   Timer C (3 min, §16.8, for an early dialog that never completes), `dialog.timeoutS`
 *   for a confirmed dialog that no re-INVITE or UPDATE refreshes, or an operator (`sipctl
 *   dialog end`: BYE to both sides, Kamailio's dlg_end_dlg).
 *
 * In-dialog requests are recognized from either direction: the caller's carry its tag in
 * From, the callee's in To (§12.2.1.1). A request for a dialog we do not know is not ours to
 * judge: it is relayed as before (the route decides), only not counted.
 *
 * Every timer of every dialog is one entry in a single heap (src/transaction's TimerQueue),
 * never a Node timer per dialog. The table is bounded by `dialog.max`.
 */
import type { SipMessage } from '../sip/message.js';
import { TimerQueue, type TimerEntry, type TimerOwner } from '../transaction/timer-queue.js';
import type { Clock } from '../dispatcher/types.js';
import type { Inbound, Target } from '../transport/types.js';
import type { DialogObserver, DispatchPick } from '../proxy/services.js';

export type DialogState = 'trying' | 'early' | 'confirmed' | 'ended';
export type EndedBy = 'caller' | 'callee' | 'timeout' | 'cancel' | 'failed' | 'admin';

export interface DialogConfig {
  enabled: boolean;
  /** A confirmed dialog ends this long after its last refresh (Kamailio's default_timeout). */
  timeoutS: number;
  /** Most dialogs at once; an initial INVITE beyond is answered 503. */
  max: number;
  /** An early dialog that never completes ends after this long (Timer C, §16.8: more than 3 min). */
  timerCS: number;
}

/** A per-destination count of active calls, shared by the destination across reloads. */
export interface CallCounter {
  active: number;
}

/** One call, as the CDR writer receives it when it ends. */
export interface CallRecord {
  callId: string;
  fromUri: string;
  toUri: string;
  source: string;
  setid: number | null;
  destination: string | null;
  startMs: number;
  answerMs: number | null;
  endMs: number;
  code: number;
  reason: string;
  endedBy: EndedBy;
}

/** What `sipctl dialog list` shows of a live call. */
export interface DialogView {
  id: number;
  callId: string;
  state: DialogState;
  from: string;
  to: string;
  source: string;
  setid: number | null;
  destination: string | null;
  ageS: number;
  answeredS: number | null;
}

const TIMER_C = 1;
const TIMER_LIFETIME = 2;
const TIMER_CANCEL = 3;
/** After a CANCEL the 487 is awaited this long (64 × T1, §9.1 / §17.1.1.2 Timer B) before the call is ended anyway. */
const CANCEL_GRACE_MS = 32_000;

export class Dialog implements TimerOwner {
  state: DialogState = 'trying';
  toTag: string | undefined = undefined;
  /** Distinct To tags seen in provisional responses (forks); bounded. */
  forks = 0;
  answerMs: number | null = null;
  cancelled = false;
  timer: TimerEntry | undefined = undefined;
  /** Highest CSeq seen from each side (for a BYE of our own, §12.2.1.1). */
  callerCseq: number;
  calleeCseq = 0;
  calleeContact: string | undefined = undefined;
  /** The To header field value with the callee's tag, from the 2xx. */
  toHeader: string;
  load: CallCounter | undefined;

  constructor(
    private readonly tracker: DialogTracker,
    readonly id: number,
    readonly key: string,
    readonly callId: string,
    readonly fromTag: string,
    readonly fromHeader: string,
    toHeader: string,
    readonly fromUri: string,
    readonly toUri: string,
    readonly callerContact: string | undefined,
    readonly callerTarget: Target,
    public calleeTarget: Target,
    public setid: number | null,
    public destination: string | null,
    load: CallCounter | undefined,
    readonly startMs: number,
    cseq: number,
  ) {
    this.toHeader = toHeader;
    this.callerCseq = cseq;
    this.load = load;
  }

  onTimer(kind: number): void {
    this.timer = undefined;
    this.tracker.expired(this, kind);
  }
}

export interface DialogTrackerOptions {
  config: DialogConfig;
  clock: Clock;
  /** Wall-clock time for CDRs (ms since the epoch). */
  wallNow?: () => number;
  /** Every ended call (the CDR writer). */
  onEnd?: (record: CallRecord) => void;
  /** The destination's shared active-call counter, for a dispatcher pick. */
  counterOf?: (pick: DispatchPick) => CallCounter | undefined;
  /** Send a request of our own (BYE) to `target`; `via(target)` gives our Via for it. */
  send?: (target: Target, bytes: Buffer) => void;
  via?: (target: Target) => string;
}

export interface TrackerStats {
  created: number;
  ended: Record<EndedBy, number>;
  refusedFull: number;
}

/** How many distinct early To tags one call keeps count of (a fork storm must not grow anything). */
const MAX_FORKS = 16;

export class DialogTracker implements DialogObserver {
  private readonly byKey = new Map<string, Dialog>();
  private readonly byId = new Map<number, Dialog>();
  private readonly timers: TimerQueue;
  private readonly config: DialogConfig;
  private readonly wallNow: () => number;
  private nextId = 1;
  private byeSeq = 0;
  readonly stats: TrackerStats = {
    created: 0,
    ended: { caller: 0, callee: 0, timeout: 0, cancel: 0, failed: 0, admin: 0 },
    refusedFull: 0,
  };

  constructor(private readonly opts: DialogTrackerOptions) {
    this.config = opts.config;
    this.wallNow = opts.wallNow ?? Date.now;
    this.timers = new TimerQueue(opts.clock, (e) => {
      try {
        e.owner.onTimer(e.kind);
      } catch {
        // a dialog's timer never throws out of the queue
      }
    });
  }

  get size(): number {
    return this.byKey.size;
  }

  // ------------------------------------------------------------------ DialogObserver (the core's hooks)

  full(msg: SipMessage): boolean {
    if (this.byKey.size < this.config.max) return false;
    // A retransmission of an INVITE we track is no new call.
    const tag = msg.from.tag;
    if (tag !== undefined && this.byKey.has(keyOf(msg.callId, tag))) return false;
    this.stats.refusedFull++;
    return true;
  }

  invite(msg: SipMessage, inbound: Inbound, target: Target, pick: DispatchPick | undefined): void {
    const from = msg.from;
    const tag = from.tag;
    // §8.1.1.3: a From tag is mandatory; an INVITE without one cannot be followed (RFC 2543 peers).
    if (tag === undefined) return;
    const callId = msg.callId;
    const key = keyOf(callId, tag);
    if (this.byKey.has(key)) return; // a retransmission (stateless mode relays it again)
    if (this.byKey.size >= this.config.max) return;
    const contacts = msg.contacts;
    const contact = contacts === '*' ? undefined : contacts[0]?.uriText;
    const load = pick === undefined ? undefined : this.opts.counterOf?.(pick);
    if (load !== undefined) load.active++;
    const d = new Dialog(
      this,
      this.nextId++,
      key,
      callId,
      tag,
      msg.rawValue(msg.fieldIndex('from')),
      msg.rawValue(msg.fieldIndex('to')),
      from.uriText,
      msg.to.uriText,
      contact,
      { protocol: inbound.protocol, address: inbound.sourceAddress, port: inbound.sourcePort },
      target,
      pick?.setid ?? null,
      pick?.uri ?? null,
      load,
      this.wallNow(),
      msg.cseq.seq,
    );
    this.byKey.set(key, d);
    this.byId.set(d.id, d);
    this.stats.created++;
    this.arm(d, TIMER_C, this.config.timerCS * 1000);
  }

  refused(msg: SipMessage, inbound: Inbound, status: number, reason: string | undefined): void {
    // An initial INVITE we answered ourselves (no destination, full, loop ...): a call
    // attempt with no dialog, still one CDR row.
    const now = this.wallNow();
    let callId: string;
    let fromUri: string;
    let toUri: string;
    try {
      callId = msg.callId;
      fromUri = msg.from.uriText;
      toUri = msg.to.uriText;
    } catch {
      return;
    }
    this.opts.onEnd?.({
      callId,
      fromUri,
      toUri,
      source: `${inbound.protocol}:${inbound.sourceAddress}:${inbound.sourcePort}`,
      setid: null,
      destination: null,
      startMs: now,
      answerMs: null,
      endMs: now,
      code: status,
      reason: reason ?? '',
      endedBy: 'failed',
    });
  }

  request(msg: SipMessage): void {
    const method = msg.method;
    if (method === 'CANCEL') {
      const tag = msg.from.tag;
      const d = tag === undefined ? undefined : this.byKey.get(keyOf(msg.callId, tag));
      // §9.2: a CANCEL after the final response does nothing.
      if (d === undefined || d.state === 'confirmed' || d.cancelled) return;
      d.cancelled = true;
      this.arm(d, TIMER_CANCEL, CANCEL_GRACE_MS);
      return;
    }
    const toTag = msg.to.tag;
    if (toTag === undefined) return;
    const callId = msg.callId;
    const fromTag = msg.from.tag;
    let d = fromTag === undefined ? undefined : this.byKey.get(keyOf(callId, fromTag));
    let fromCaller = true;
    if (d === undefined) {
      // The callee's requests carry the caller's tag in To (§12.2.1.1).
      d = this.byKey.get(keyOf(callId, toTag));
      fromCaller = false;
      if (d === undefined) return;
    }
    const seq = msg.cseq.seq;
    if (fromCaller) {
      if (seq > d.callerCseq) d.callerCseq = seq;
    } else if (seq > d.calleeCseq) d.calleeCseq = seq;
    if (method === 'BYE') {
      this.end(d, fromCaller ? 'caller' : 'callee', 200, 'BYE');
    } else if ((method === 'INVITE' || method === 'UPDATE') && d.state === 'confirmed') {
      // RFC 3261 §14 / RFC 3311: a re-INVITE or UPDATE refreshes the dialog; it stays the same one.
      this.arm(d, TIMER_LIFETIME, this.config.timeoutS * 1000);
    }
  }

  response(msg: SipMessage): void {
    if (msg.cseq.method !== 'INVITE') return;
    const tag = msg.from.tag;
    if (tag === undefined) return;
    const d = this.byKey.get(keyOf(msg.callId, tag));
    if (d === undefined) return;
    const status = msg.status;
    if (d.state === 'confirmed') return; // a re-INVITE's answer, or a 2xx retransmission / another fork's 2xx
    const toTag = msg.to.tag;
    if (status < 200) {
      if (status > 100 && toTag !== undefined && d.state === 'trying') {
        d.state = 'early';
        d.forks = 1;
        d.toTag = toTag;
      } else if (toTag !== undefined && toTag !== d.toTag && d.forks < MAX_FORKS) {
        d.forks++;
      }
      return;
    }
    if (status < 300) {
      d.state = 'confirmed';
      d.toTag = toTag;
      d.answerMs = this.wallNow();
      d.toHeader = msg.rawValue(msg.fieldIndex('to'));
      const contacts = msg.contacts;
      d.calleeContact = contacts === '*' ? undefined : contacts[0]?.uriText;
      this.arm(d, TIMER_LIFETIME, this.config.timeoutS * 1000);
      return;
    }
    this.end(d, d.cancelled ? 'cancel' : 'failed', status, msg.reason);
  }

  final(request: SipMessage, status: number, reason: string | undefined): void {
    if (status < 300) return;
    const tag = request.from.tag;
    if (tag === undefined) return;
    const d = this.byKey.get(keyOf(request.callId, tag));
    if (d === undefined || d.state === 'confirmed') return;
    this.end(d, d.cancelled ? 'cancel' : 'failed', status, reason ?? '');
  }

  retarget(request: SipMessage, target: Target, pick: DispatchPick | undefined): void {
    const tag = request.from.tag;
    if (tag === undefined) return;
    const d = this.byKey.get(keyOf(request.callId, tag));
    if (d === undefined || d.state === 'confirmed') return;
    // The failed-over-from destination no longer carries this call; the new one does.
    if (d.load !== undefined) d.load.active--;
    d.load = pick === undefined ? undefined : this.opts.counterOf?.(pick);
    if (d.load !== undefined) d.load.active++;
    d.calleeTarget = target;
    d.setid = pick?.setid ?? d.setid;
    d.destination = pick?.uri ?? null;
  }

  // ------------------------------------------------------------------ timers and ending

  /** @internal from Dialog.onTimer */
  expired(d: Dialog, kind: number): void {
    if (d.state === 'ended') return;
    if (kind === TIMER_CANCEL) {
      this.end(d, 'cancel', 487, 'Request Terminated');
    } else if (kind === TIMER_C) {
      this.end(d, 'failed', 408, 'Request Timeout (Timer C)');
    } else {
      // The call outlived dialog.timeoutS with no refresh: both ends are told (dlg_end_dlg).
      this.sendByes(d);
      this.end(d, 'timeout', 200, 'dialog timeout');
    }
  }

  private arm(d: Dialog, kind: number, ms: number): void {
    if (d.timer !== undefined) this.timers.remove(d.timer);
    d.timer = this.timers.add(d, kind, ms);
  }

  private end(d: Dialog, by: EndedBy, code: number, reason: string): void {
    if (d.state === 'ended') return;
    d.state = 'ended';
    if (d.timer !== undefined) {
      this.timers.remove(d.timer);
      d.timer = undefined;
    }
    if (d.load !== undefined) {
      d.load.active--;
      d.load = undefined;
    }
    this.byKey.delete(d.key);
    this.byId.delete(d.id);
    this.stats.ended[by]++;
    this.opts.onEnd?.({
      callId: d.callId,
      fromUri: d.fromUri,
      toUri: d.toUri,
      source: `${d.callerTarget.protocol}:${d.callerTarget.address}:${d.callerTarget.port}`,
      setid: d.setid,
      destination: d.destination,
      startMs: d.startMs,
      answerMs: d.answerMs,
      endMs: this.wallNow(),
      code,
      reason,
      endedBy: by,
    });
  }

  // ------------------------------------------------------------------ operators

  list(): DialogView[] {
    const now = this.wallNow();
    const out: DialogView[] = [];
    for (const d of this.byId.values()) {
      out.push({
        id: d.id,
        callId: d.callId,
        state: d.state,
        from: d.fromUri,
        to: d.toUri,
        source: `${d.callerTarget.protocol}:${d.callerTarget.address}:${d.callerTarget.port}`,
        setid: d.setid,
        destination: d.destination,
        ageS: Math.round((now - d.startMs) / 100) / 10,
        answeredS: d.answerMs === null ? null : Math.round((now - d.answerMs) / 100) / 10,
      });
    }
    return out;
  }

  /**
   * `sipctl dialog end ID`: BYE to the caller and to the callee (Kamailio's dlg_end_dlg), and
   * the call ends now. Only a confirmed dialog has two ends to send a BYE to.
   */
  endById(id: number): { ended: boolean; why?: string } {
    const d = this.byId.get(id);
    if (d === undefined) return { ended: false, why: `no live dialog has id ${id}` };
    if (d.state !== 'confirmed') return { ended: false, why: `dialog ${id} is ${d.state}, not confirmed: only an answered call can be ended with BYE` };
    this.sendByes(d);
    this.end(d, 'admin', 200, 'ended by an operator');
    return { ended: true };
  }

  /** Ends every dialog without a CDR (shutdown): their counts go back to zero. */
  clear(): void {
    for (const d of this.byId.values()) {
      if (d.timer !== undefined) this.timers.remove(d.timer);
      if (d.load !== undefined) d.load.active--;
      d.load = undefined;
      d.state = 'ended';
    }
    this.byId.clear();
    this.byKey.clear();
  }

  /**
   * §12.2.1.1 from each side's point of view: to the callee as the caller (From = the
   * caller's From, To = the callee's To with its tag, the caller's CSeq space + 1), and to
   * the caller as the callee. Sent straight to each end's address: the proxy is the
   * neighbour of both (a caller behind another proxy gets the BYE at the address its INVITE
   * came from).
   */
  private sendByes(d: Dialog): void {
    const send = this.opts.send;
    const via = this.opts.via;
    if (send === undefined || via === undefined || d.state !== 'confirmed') return;
    const build = (target: Target, ruri: string, from: string, to: string, cseq: number): Buffer =>
      Buffer.from(
        `BYE ${ruri} SIP/2.0\r\n` +
          `Via: ${via(target)};branch=z9hG4bK-sipctl-dlg-${d.id}-${++this.byeSeq}\r\n` +
          `Max-Forwards: 70\r\n` +
          `From: ${from}\r\n` +
          `To: ${to}\r\n` +
          `Call-ID: ${d.callId}\r\n` +
          `CSeq: ${cseq} BYE\r\n` +
          `Reason: SIP;cause=200;text="ended by the proxy"\r\n` +
          `Content-Length: 0\r\n\r\n`,
        'latin1',
      );
    try {
      send(d.calleeTarget, build(d.calleeTarget, d.calleeContact ?? d.toUri, d.fromHeader, d.toHeader, d.callerCseq + 1));
      send(d.callerTarget, build(d.callerTarget, d.callerContact ?? d.fromUri, d.toHeader, d.fromHeader, Math.max(d.calleeCseq, 0) + 1));
    } catch {
      // an unreachable end changes nothing: the call ends here anyway
    }
  }
}

function keyOf(callId: string, tag: string): string {
  return `${callId}\n${tag}`;
}
