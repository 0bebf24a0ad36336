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
 *   dialog end`: BYE to both sides, Kamailio's dlg_end_dlg; CANCEL towards the callee for
 *   a call not yet answered), by in-dialog OPTIONS keepalives that an end stopped answering
 *   (`dialog.keepaliveS`, Kamailio's ka_timer), or by the proxy's graceful shutdown (a CDR
 *   row for every call still up).
 *
 * In-dialog requests are recognized from either direction: the caller's carry its tag in
 * From, the callee's in To (§12.2.1.1). A request for a dialog we do not know is not ours to
 * judge: it is relayed as before (the route decides), only not counted.
 *
 * Every timer of every dialog is one entry in a single heap (src/transaction's TimerQueue),
 * never a Node timer per dialog; keepalives are one periodic sweep over the confirmed
 * dialogs. The table is bounded by `dialog.max`.
 */
import { randomBytes } from 'node:crypto';
import type { SipMessage } from '../sip/message.js';
import type { SipUri } from '../sip/uri.js';
import { parseMessage } from '../sip/parse.js';
import { sameAddress } from '../proxy/identity.js';
import { buildCancel } from '../transaction/build.js';
import { TimerQueue, type TimerEntry, type TimerOwner } from '../transaction/timer-queue.js';
import type { Clock } from '../dispatcher/types.js';
import type { Inbound, Target } from '../transport/types.js';
import type { DialogObserver, DispatchPick } from '../proxy/services.js';

export type DialogState = 'trying' | 'early' | 'confirmed' | 'ended';
/**
 * Who or what ended a call (the CDR's ended_by): a BYE from the caller or the callee,
 * dialog.timeoutS, a CANCEL, a final failure, an operator (`sipctl dialog end`), an end that
 * stopped answering keepalives (dialog.keepaliveS), or the proxy's graceful shutdown.
 */
export type EndedBy = 'caller' | 'callee' | 'timeout' | 'cancel' | 'failed' | 'admin' | 'keepalive' | 'shutdown';

/** Every EndedBy value, for counters that list them all. */
export const ENDED_BY: readonly EndedBy[] = ['caller', 'callee', 'timeout', 'cancel', 'failed', 'admin', 'keepalive', 'shutdown'];

export interface DialogConfig {
  enabled: boolean;
  /** A confirmed dialog ends this long after its last refresh (Kamailio's default_timeout). */
  timeoutS: number;
  /** Most dialogs at once; an initial INVITE beyond is answered 503. */
  max: number;
  /** An early dialog that never completes ends after this long (Timer C, §16.8: more than 3 min). */
  timerCS: number;
  /** In-dialog OPTIONS to both ends of every confirmed call this often, seconds; 0: off (Kamailio's ka_timer). */
  keepaliveS?: number;
  /** Keepalives in a row an end may leave unanswered before the call is ended (Kamailio's ka_failed_limit). */
  keepaliveFailures?: number;
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
  /** A provisional response (100 included) came back: a CANCEL may be sent now (§9.1). */
  provisional = false;
  /**
   * Until the call is answered or ends: the INVITE as sent downstream (stateless mode, to
   * build our own CANCEL from, §9.1), or the INVITE as received (transaction mode: its
   * transaction's key). Released on the 2xx.
   */
  invite: Buffer | SipMessage | undefined = undefined;
  /** An operator ended the call before it was answered: it ends as 'admin' when the 487 comes. */
  adminEnd = false;
  /** Keepalives (dialog.keepaliveS): which ends have not answered the last one (KA_CALLEE | KA_CALLER). */
  kaPending = 0;
  kaMissesCallee = 0;
  kaMissesCaller = 0;
  /**
   * The route set beyond us towards each end (§12.1.2 from the Record-Route of the 2xx),
   * as a Route header value; undefined when no other proxy record-routed on that side.
   * Read only while keepalives are on.
   */
  calleeRoute: string | undefined = undefined;
  callerRoute: string | undefined = undefined;

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
  /** Is this URI one of ours (a Record-Route entry we wrote)? For the route sets of keepalives. */
  isOwnUri?: (uri: SipUri) => boolean;
  /**
   * Transaction mode: CANCEL the INVITE transaction begun for `invite` (the request as
   * received) the way a CANCEL from the caller would (§16.10). False when it is gone.
   */
  cancelInvite?: (invite: SipMessage) => boolean;
}

export interface TrackerStats {
  created: number;
  ended: Record<EndedBy, number>;
  refusedFull: number;
  /** Keepalive OPTIONS sent, and answers read (responses to our own requests absorbed). */
  keepalivesSent: number;
  keepaliveAnswers: number;
}

/** Live calls by state (kept on every transition: status reads it in O(1)). */
export interface DialogCounts {
  trying: number;
  early: number;
  confirmed: number;
}

const KA_CALLEE = 1;
const KA_CALLER = 2;
/** Our keepalive branches: `z9hG4bK-sipctl-ka-SECRET.ID.SIDE.SEQ` (SIDE e: callee, r: caller). */
const KA_PREFIX = 'z9hG4bK-sipctl-ka-';
/** Our BYEs' branches. */
const BYE_PREFIX = 'z9hG4bK-sipctl-dlg-';
/** Confirmed dialogs a keepalive sweep handles before it yields to the event loop. */
const SWEEP_CHUNK = 2000;

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
  private kaSeq = 0;
  /** In every keepalive branch: a response nobody saw the OPTIONS of cannot be forged. */
  private readonly kaSecret = randomBytes(6).toString('hex');
  private readonly keepaliveMs: number;
  private readonly keepaliveFailures: number;
  private sweepTimer: unknown = undefined;
  private stopped = false;
  readonly stats: TrackerStats = {
    created: 0,
    ended: { caller: 0, callee: 0, timeout: 0, cancel: 0, failed: 0, admin: 0, keepalive: 0, shutdown: 0 },
    refusedFull: 0,
    keepalivesSent: 0,
    keepaliveAnswers: 0,
  };
  readonly counts: DialogCounts = { trying: 0, early: 0, confirmed: 0 };

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
    this.keepaliveMs = (opts.config.keepaliveS ?? 0) * 1000;
    this.keepaliveFailures = Math.max(1, opts.config.keepaliveFailures ?? 2);
    if (this.keepaliveMs > 0) this.armSweep();
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

  invite(msg: SipMessage, inbound: Inbound, target: Target, pick: DispatchPick | undefined, sent?: Buffer): void {
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
    // Kept by reference (no copy) until the answer: what `dialog end` needs to cancel the call.
    d.invite = sent ?? msg.received;
    this.byKey.set(key, d);
    this.byId.set(d.id, d);
    this.stats.created++;
    this.counts.trying++;
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
      d.provisional = true;
      if (status > 100 && toTag !== undefined && d.state === 'trying') {
        this.counts.trying--;
        this.counts.early++;
        d.state = 'early';
        d.forks = 1;
        d.toTag = toTag;
      } else if (toTag !== undefined && toTag !== d.toTag && d.forks < MAX_FORKS) {
        d.forks++;
      }
      return;
    }
    if (status < 300) {
      if (d.state !== 'ended') this.counts[d.state]--;
      this.counts.confirmed++;
      d.state = 'confirmed';
      d.invite = undefined;
      d.toTag = toTag;
      d.answerMs = this.wallNow();
      d.toHeader = msg.rawValue(msg.fieldIndex('to'));
      const contacts = msg.contacts;
      d.calleeContact = contacts === '*' ? undefined : contacts[0]?.uriText;
      // Only with keepalives on: the Record-Route is not read per call otherwise.
      if (this.keepaliveMs > 0) this.learnRouteSets(d, msg);
      this.arm(d, TIMER_LIFETIME, this.config.timeoutS * 1000);
      if (d.adminEnd) {
        // The callee answered while an operator's CANCEL was on its way (§9.1 race): the
        // operator wanted the call ended, so it is, with BYE to both ends.
        this.sendByes(d);
        this.end(d, 'admin', 200, 'ended by an operator (answered while being cancelled)');
      }
      return;
    }
    this.end(d, endedUnanswered(d), status, msg.reason);
  }

  final(request: SipMessage, status: number, reason: string | undefined): void {
    if (status < 300) return;
    const tag = request.from.tag;
    if (tag === undefined) return;
    const d = this.byKey.get(keyOf(request.callId, tag));
    if (d === undefined || d.state === 'confirmed') return;
    this.end(d, endedUnanswered(d), status, reason ?? '');
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
      this.end(d, d.adminEnd ? 'admin' : 'cancel', 487, 'Request Terminated');
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
    this.counts[d.state]--;
    d.state = 'ended';
    d.invite = undefined;
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
   * `sipctl dialog end ID` (Kamailio's dlg_end_dlg). An answered call: BYE to the caller and
   * to the callee, and the call ends now. A call not answered yet: CANCEL towards the callee
   * (§9.1), whose 487 then reaches the caller through the proxy and ends the call ('admin');
   * if none comes within 32 s the call ends anyway. Stateless mode builds the CANCEL from the
   * INVITE as it was sent downstream, which §9.1 allows only once a provisional response has
   * come back; transaction mode cancels the INVITE's branches as a caller's CANCEL would
   * (§16.10), and the layer holds the CANCEL of a branch until its first provisional.
   */
  endById(id: number): { ended: boolean; how?: 'bye' | 'cancel'; why?: string } {
    const d = this.byId.get(id);
    if (d === undefined) return { ended: false, why: `no live dialog has id ${id}` };
    if (d.state === 'confirmed') {
      this.sendByes(d);
      this.end(d, 'admin', 200, 'ended by an operator');
      return { ended: true, how: 'bye' };
    }
    if (d.state === 'ended') return { ended: false, why: `dialog ${id} has ended` };
    if (d.cancelled) return { ended: false, why: `dialog ${id} is being cancelled already; it ends with the callee's 487 (or 32 s after the CANCEL)` };
    const invite = d.invite;
    if (invite === undefined) return { ended: false, why: `dialog ${id} has no INVITE left to cancel` };
    if (Buffer.isBuffer(invite)) {
      if (!d.provisional) {
        return { ended: false, why: `dialog ${id} has had no provisional response yet, and a CANCEL must wait for one (RFC 3261 §9.1); try again in a moment` };
      }
      const send = this.opts.send;
      if (send === undefined) return { ended: false, why: 'this tracker cannot send requests' };
      let cancel: Buffer;
      try {
        cancel = buildCancel(parseMessage(invite));
      } catch (err) {
        return { ended: false, why: `cannot build a CANCEL from the INVITE sent: ${err instanceof Error ? err.message : String(err)}` };
      }
      try {
        send(d.calleeTarget, cancel);
      } catch {
        // as with a lost datagram: the grace timer below ends the call
      }
    } else if (this.opts.cancelInvite === undefined || !this.opts.cancelInvite(invite)) {
      return { ended: false, why: `dialog ${id}: its INVITE transaction is gone` };
    }
    d.cancelled = true;
    d.adminEnd = true;
    this.arm(d, TIMER_CANCEL, CANCEL_GRACE_MS);
    return { ended: true, how: 'cancel' };
  }

  /**
   * Graceful shutdown: every call still up gets its CDR row now (ended_by 'shutdown', end
   * time now; code 200 for an answered call, 0 for one that had no final response), before
   * the CDR writer's last flush. No BYE is sent: the calls' media goes on without the proxy,
   * and their in-dialog requests reach a restarted one. The keepalive sweep stops.
   */
  shutdown(): void {
    this.stopped = true;
    if (this.sweepTimer !== undefined) this.opts.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const d of [...this.byId.values()]) {
      if (d.state === 'confirmed') this.end(d, 'shutdown', 200, 'proxy shut down');
      else this.end(d, 'shutdown', 0, 'proxy shut down before the call was answered');
    }
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
    const build = (target: Target, ruri: string, from: string, to: string, cseq: number, route: string | undefined): Buffer =>
      Buffer.from(
        `BYE ${ruri} SIP/2.0\r\n` +
          `Via: ${via(target)};branch=${BYE_PREFIX}${d.id}-${++this.byeSeq}\r\n` +
          (route === undefined ? '' : `Route: ${route}\r\n`) +
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
      send(d.calleeTarget, build(d.calleeTarget, d.calleeContact ?? d.toUri, d.fromHeader, d.toHeader, d.callerCseq + 1, d.calleeRoute));
      send(d.callerTarget, build(d.callerTarget, d.callerContact ?? d.fromUri, d.toHeader, d.fromHeader, Math.max(d.calleeCseq, 0) + 1, d.callerRoute));
    } catch {
      // an unreachable end changes nothing: the call ends here anyway
    }
  }
  // ------------------------------------------------------------------ keepalives (dialog.keepaliveS)

  /**
   * The route set beyond us towards each end, from the 2xx's Record-Route (§12.1.2): the
   * entries above ours were written by proxies between us and the callee (towards it, in
   * reverse order: the nearest first), those below ours by proxies between the caller and us
   * (towards the caller, in order). Our own entries (one, or two with r2=on) are skipped.
   */
  private learnRouteSets(d: Dialog, msg: SipMessage): void {
    const isOwn = this.opts.isOwnUri;
    if (isOwn === undefined) return;
    let rrs;
    try {
      rrs = msg.recordRoutes;
    } catch {
      return; // an unreadable Record-Route: requests go straight to the neighbour, as before
    }
    if (rrs.length === 0) return;
    let first = -1;
    let last = -1;
    for (let i = 0; i < rrs.length; i++) {
      let own = false;
      try {
        own = isOwn(rrs[i]!.uri);
      } catch {
        own = false;
      }
      if (own) {
        if (first < 0) first = i;
        last = i;
      }
    }
    if (first < 0) return;
    const bracket = (t: string): string => (t.startsWith('<') ? t : `<${t}>`);
    if (first > 0) d.calleeRoute = rrs.slice(0, first).reverse().map((r) => bracket(r.uriText)).join(', ');
    if (last < rrs.length - 1) d.callerRoute = rrs.slice(last + 1).map((r) => bracket(r.uriText)).join(', ');
  }

  private armSweep(): void {
    if (this.stopped) return;
    this.sweepTimer = this.opts.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep(this.byId.values());
    }, this.keepaliveMs);
  }

  /**
   * One keepalive round over every confirmed dialog, SWEEP_CHUNK dialogs per turn of the
   * event loop (so that a large table never holds up forwarding); the next round is armed
   * when this one is done. Dialogs that end meanwhile are skipped (Map iteration allows it).
   */
  private sweep(it: Iterator<Dialog>): void {
    if (this.stopped) return;
    for (let n = 0; n < SWEEP_CHUNK; n++) {
      const r = it.next();
      if (r.done === true) {
        this.armSweep();
        return;
      }
      try {
        this.keepalive(r.value);
      } catch {
        // one dialog's keepalive never stops the round
      }
    }
    setImmediate(() => this.sweep(it));
  }

  /**
   * Per confirmed dialog, per round: an end that left the previous OPTIONS unanswered
   * misses one; `keepaliveFailures` misses in a row end the call (BYE to both ends,
   * 'keepalive', 408). Then a fresh OPTIONS goes to both ends. There is no retransmission
   * over UDP: the next round's OPTIONS is the retry, which is why the default needs two
   * misses in a row.
   */
  private keepalive(d: Dialog): void {
    if (d.state !== 'confirmed') return;
    if ((d.kaPending & KA_CALLEE) !== 0 && ++d.kaMissesCallee >= this.keepaliveFailures) {
      this.keepaliveFailed(d, 408, `keepalive: the callee did not answer ${d.kaMissesCallee} OPTIONS in a row`);
      return;
    }
    if ((d.kaPending & KA_CALLER) !== 0 && ++d.kaMissesCaller >= this.keepaliveFailures) {
      this.keepaliveFailed(d, 408, `keepalive: the caller did not answer ${d.kaMissesCaller} OPTIONS in a row`);
      return;
    }
    const send = this.opts.send;
    const via = this.opts.via;
    if (send === undefined || via === undefined) return;
    d.kaPending = KA_CALLEE | KA_CALLER;
    // §12.2.1.1, each request as the other end would write it. The CSeq is the highest
    // that end has used, not a new one: the proxy is not a UA of the dialog, and a number
    // above the UA's own would make that UA's next request (its BYE) look out of order to
    // the other end (§12.2.2: 500). Equal is not lower, so a live UA answers (200, or 500
    // from a stricter one: either way alive); one that lost the dialog answers 481.
    send(d.calleeTarget, this.options(d, 'e', d.calleeTarget, d.calleeContact ?? d.toUri, d.fromHeader, d.toHeader, d.callerCseq, d.calleeRoute, via));
    send(d.callerTarget, this.options(d, 'r', d.callerTarget, d.callerContact ?? d.fromUri, d.toHeader, d.fromHeader, d.calleeCseq > 0 ? d.calleeCseq : 1, d.callerRoute, via));
    this.stats.keepalivesSent += 2;
  }

  private options(
    d: Dialog,
    side: 'e' | 'r',
    target: Target,
    ruri: string,
    from: string,
    to: string,
    cseq: number,
    route: string | undefined,
    via: (target: Target) => string,
  ): Buffer {
    return Buffer.from(
      `OPTIONS ${ruri} SIP/2.0\r\n` +
        `Via: ${via(target)};branch=${KA_PREFIX}${this.kaSecret}.${d.id}.${side}.${++this.kaSeq}\r\n` +
        (route === undefined ? '' : `Route: ${route}\r\n`) +
        `Max-Forwards: 70\r\n` +
        `From: ${from}\r\n` +
        `To: ${to}\r\n` +
        `Call-ID: ${d.callId}\r\n` +
        `CSeq: ${cseq} OPTIONS\r\n` +
        `Content-Length: 0\r\n\r\n`,
      'latin1',
    );
  }

  /** An end is gone: the call ends as with `dialog end` (BYE to both ends, dlg_end_dlg). */
  private keepaliveFailed(d: Dialog, code: number, reason: string): void {
    this.sendByes(d);
    this.end(d, 'keepalive', code, reason);
  }

  /**
   * A response whose only Via is ours: the answer to a request the proxy sent itself. Ours
   * to absorb (true) when it answers a keepalive, one of our BYEs or a CANCEL; it is never
   * relayed. A keepalive answer counts only with this process's secret in the branch, and
   * only from the address the OPTIONS went to (responses from senders the address table
   * does not admit were dropped before this, acl.checkResponses).
   */
  ownResponse(msg: SipMessage, inbound: Inbound): boolean {
    let branch: string | undefined;
    try {
      branch = msg.topVia?.branch;
    } catch {
      return false;
    }
    if (branch === undefined) return false;
    if (branch.startsWith(KA_PREFIX)) {
      this.keepaliveAnswer(branch, msg.status, inbound);
      return true;
    }
    if (branch.startsWith(BYE_PREFIX)) return true;
    try {
      return msg.cseq.method === 'CANCEL';
    } catch {
      return false;
    }
  }

  private keepaliveAnswer(branch: string, status: number, inbound: Inbound): void {
    const parts = branch.slice(KA_PREFIX.length).split('.');
    if (parts.length !== 4 || parts[0] !== this.kaSecret) return;
    const d = this.byId.get(Number(parts[1]));
    if (d === undefined || d.state !== 'confirmed' || status < 200) return;
    const side = parts[2] === 'e' ? KA_CALLEE : parts[2] === 'r' ? KA_CALLER : 0;
    if (side === 0) return;
    const target = side === KA_CALLEE ? d.calleeTarget : d.callerTarget;
    if (!sameAddress(inbound.sourceAddress, target.address)) return;
    this.stats.keepaliveAnswers++;
    if (status === 408 || status === 481) {
      // Kamailio's reading: 481, the end no longer knows the dialog; 408, nobody answered
      // beyond the next hop. Any other answer, even an error, says the end is there.
      const who = side === KA_CALLEE ? 'callee' : 'caller';
      this.keepaliveFailed(d, status, `keepalive: the ${who} answered ${status}`);
      return;
    }
    d.kaPending &= ~side;
    if (side === KA_CALLEE) d.kaMissesCallee = 0;
    else d.kaMissesCaller = 0;
  }
}

/** How a call that was never answered ended: an operator's CANCEL, the caller's, or a failure. */
function endedUnanswered(d: Dialog): EndedBy {
  return d.adminEnd ? 'admin' : d.cancelled ? 'cancel' : 'failed';
}

function keyOf(callId: string, tag: string): string {
  return `${callId}\n${tag}`;
}
