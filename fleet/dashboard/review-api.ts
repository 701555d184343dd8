// The review's HTTP API (docs/data-loop.md "Review"): kept frames (the NG gallery, the review
// queue), one frame with its label history, its image, a relabel from an operator, and the rates
// the line's ground truth implies. Registered on the dashboard's server (server.ts), behind its
// sign-in; relabelling needs the operator role and a JSON body from the page itself.

import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { formatIssues } from '../../runtime/schema/codec.ts';
import { LabelClass } from '../../runtime/schema/keep.ts';
import { CameraId, DeviceId } from '../../runtime/schema/payloads.ts';
import type { Log } from '../../runtime/log.ts';
import type { Queryable } from '../record/db.ts';
import { frameDetail, frameImage, lineRates, reviewFrames } from '../record/loop-queries.ts';
import { insertReviewLabel } from '../record/loop-store.ts';

const Key = { device: DeviceId, seqEpoch: z.string().min(1).max(64), seq: z.coerce.number().int().nonnegative() };
const FramesQuery = z.strictObject({
  view: z.enum(['ng', 'queue', 'all']).default('queue'),
  order: z.enum(['newest', 'uncertain']).default('newest'),
  device: DeviceId.optional(),
  camera: CameraId.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(60),
  offset: z.coerce.number().int().min(0).default(0),
});
const KeyQuery = z.strictObject(Key);
const LabelBody = z.strictObject({ ...Key, seq: z.number().int().nonnegative(), class: LabelClass });

const fail = (reply: FastifyReply, status: number, code: string, message: string) => reply.code(status).send({ ok: false, code, message });

export function registerReview(app: FastifyInstance, d: { db: Queryable; log: Log }): void {
  app.get('/api/review/frames', async (req, reply) => {
    const q = FramesQuery.safeParse(req.query);
    if (!q.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(q.error.issues));
    return reviewFrames(d.db, q.data);
  });

  app.get('/api/review/frame', async (req, reply) => {
    const q = KeyQuery.safeParse(req.query);
    if (!q.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(q.error.issues));
    return (await frameDetail(d.db, q.data)) ?? fail(reply, 404, 'NO_FRAME', `no kept frame ${q.data.device} ${q.data.seqEpoch}/${q.data.seq}`);
  });

  app.get('/api/review/image', async (req, reply) => {
    const q = KeyQuery.safeParse(req.query);
    if (!q.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(q.error.issues));
    const img = await frameImage(d.db, q.data);
    if (!img) return fail(reply, 404, 'NO_FRAME', `no kept frame ${q.data.device} ${q.data.seqEpoch}/${q.data.seq}`);
    // A kept frame never changes: the browser may keep it.
    return reply.header('content-type', img.contentType).header('cache-control', 'private, max-age=86400').send(Buffer.from(img.image));
  });

  /** The operator says what the part is: one of the frame's classes; OK/NG follows from the task's good-part classes. */
  app.post('/api/review/label', async (req, reply) => {
    const user = req.user!;
    if (user.role !== 'operator') return fail(reply, 403, 'FORBIDDEN', `${user.name} is a ${user.role}: relabelling needs the operator role`);
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return fail(reply, 415, 'JSON_ONLY', 'send the label as application/json');
    const b = LabelBody.safeParse(req.body);
    if (!b.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(b.error.issues));
    const f = await frameDetail(d.db, b.data);
    if (!f) return fail(reply, 404, 'NO_FRAME', `no kept frame ${b.data.device} ${b.data.seqEpoch}/${b.data.seq}`);
    if (!f.classes.includes(b.data.class)) return fail(reply, 400, 'UNKNOWN_CLASS', `"${b.data.class}" is not a class of ${f.model} (${f.classes.join(', ')})`);
    const decision = (f.okLabels ?? f.classes).includes(b.data.class) ? 'OK' : 'NG';
    await insertReviewLabel(d.db, { labelId: randomUUID(), device: f.device, camera: f.camera, seqEpoch: f.seqEpoch, seq: f.seq, decision, class: b.data.class, by: user.name, ts: Date.now() });
    d.log.info({ user: user.name, device: f.device, seq: f.seq, class: b.data.class, decision }, 'dashboard: frame relabelled');
    return frameDetail(d.db, b.data);
  });

  app.get('/api/review/rates', async () => lineRates(d.db));
}
