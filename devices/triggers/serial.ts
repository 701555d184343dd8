// The serial PLC trigger: each TRIG the PlcHandshake accepts arms this trigger; the frame it
// selects is reported back (frameCaptured → READY, and the reject clock starts from its capture
// time). When the PLC side answers without a frame (capture timeout, busy, link lost) the arm is
// dropped so a late frame is not inferred for nothing.

import type { PlcHandshake } from '../serial/plc.ts';
import { ArmedTrigger, type ArmedOptions } from './armed.ts';

export class SerialTrigger extends ArmedTrigger {
  private readonly detach: () => void;

  constructor(
    readonly plc: PlcHandshake,
    opts: Omit<ArmedOptions, 'expireMs'> = {},
  ) {
    // No expiry here: the handshake's captureTimeoutMs answers NG E3 and then cancels the arm.
    super('serial', opts);
    const onTrigger = (e: { id: string; ts: number }): void => {
      try {
        this.fire(e.id, e.ts);
      } catch {
        // Cannot wait for a frame (queue full): answer fail-safe now rather than throw into the serial read path.
        plc.complete(e.id, { kind: 'error', code: 'INTERNAL' });
      }
    };
    const onCancel = (e: { id: string }): void => void this.cancel(e.id);
    plc.on('trigger', onTrigger);
    plc.on('cancel', onCancel);
    this.on('hit', (hit, frame) => plc.frameCaptured(hit.triggerId, frame.captureTs));
    this.detach = () => {
      plc.off('trigger', onTrigger);
      plc.off('cancel', onCancel);
    };
  }

  override close(): void {
    this.detach();
    super.close();
  }
}
