/**
 * Iris segmentation: glints -> pupil -> limbus, on the working image (see params.ts), returning both circles in
 * INPUT image pixels. Each step has its own check and a NoIrisFoundError saying which one failed.
 *
 *  1. glints filled (reflections.ts), so several spots inside a pupil do not split it;
 *  2. pupil: dark-disc candidates by box contrast, then the integro-differential operator on each of the best
 *     few (all angles but the top third, where the upper lid and lashes may cut the pupil) and a finer pass;
 *  3. limbus: the integro-differential operator on the lateral arcs only (the lids cover top and bottom), first
 *     concentric with the pupil to find the radius, then over centres near the pupil's, then finer.
 */
import { IRIS_PARAMS } from '../params.ts';
import { NoIrisFoundError } from '../errors.ts';
import { arcReach, darkDiscCandidates, darkRegionCircle, largestRadiusTried, refineCircle, type Circle, type ScoredCircle } from './circles.ts';
import { downscale, gaussianBlur, gaussianBlurWithin, type FloatImage } from './image-ops.ts';
import { removeReflections } from './reflections.ts';

export interface Segmentation {
  /** In input image pixels. */
  pupil: Circle;
  iris: Circle;
  /** Integro-differential scores (grey levels per pixel at the working scale). */
  pupilEdge: number;
  limbusEdge: number;
  /** Input pixels per working pixel. */
  scale: number;
  /** The working image, glints filled, and its glint mask. */
  working: FloatImage;
  glints: Uint8Array;
  glintPixels: number;
}

export function segmentIris(input: FloatImage, params = IRIS_PARAMS): Segmentation {
  const factor = Math.max(1, Math.ceil(Math.max(input.width, input.height) / params.workingSide));
  const work = downscale(input, factor);
  const { filled, mask: glints, pixels: glintPixels } = removeReflections(work, { min: params.specularMin, lift: params.specularLift, dilate: params.specularDilate });
  const side = Math.min(work.width, work.height);
  const smooth = gaussianBlur(filled, 1.2);

  // Pupil.
  const rpMin = params.pupilRadius[0] * side;
  const rpMax = params.pupilRadius[1] * side;
  const candidates = darkDiscCandidates(smooth, rpMin, rpMax, 4);
  if (candidates.length === 0) throw new NoIrisFoundError('no dark disc that could be a pupil', { width: input.width, height: input.height });
  const pupilArcs: Array<[number, number]> = [[-50, 230]];
  let pupil: ScoredCircle | null = null;
  for (const cand of candidates.slice(0, 3)) {
    // The candidate's box contrast gives the inside and outside levels; the dark region gives a second start.
    const inside = meanInDisc(smooth, cand, 0.6);
    const region = darkRegionCircle(smooth, cand, inside, inside + cand.score);
    const starts: Circle[] = [cand];
    if (region && region.r > 0.4 * cand.r && region.r < 1.3 * cand.r) starts.push(region);
    for (const c of starts) {
      const coarse = refineCircle(smooth, c, {
        centreRange: 0.2 * c.r,
        centreStep: Math.max(1, c.r / 12),
        rMin: Math.max(rpMin * 0.8, 0.6 * c.r),
        rMax: Math.min(rpMax * 1.2, 1.25 * c.r),
        rStep: Math.max(1, c.r / 24),
        arcs: pupilArcs,
        mask: glints,
        samples: 48,
      });
      if (!pupil || coarse.score > pupil.score) pupil = coarse;
    }
  }
  pupil = refineCircle(smooth, pupil!, { centreRange: 1.5, centreStep: 0.5, rMin: pupil!.r - 3, rMax: pupil!.r + 3, rStep: 0.5, arcs: pupilArcs, mask: glints, samples: 96 });
  if (!(pupil.score >= params.minPupilEdge)) throw new NoIrisFoundError(`the pupil boundary is too faint (${pupil.score.toFixed(2)} < ${params.minPupilEdge})`, { pupilEdge: pupil.score });

  // Limbus.
  const [a0, a1] = params.limbusArc;
  const arcs: Array<[number, number]> = [[a0, a1], [180 - a1, 180 - a0]];
  const riMin = Math.max(params.irisToPupil[0] * pupil.r, pupil.r + 8, params.irisRadius[0] * side);
  const riMax = Math.min(params.irisToPupil[1] * pupil.r, params.irisRadius[1] * side);
  if (riMax <= riMin + 4) throw new NoIrisFoundError('the pupil is too large for an iris to fit in the image', { pupilRadius: pupil.r * factor });
  const limbus = { arcs, sigma: 1.5, mask: glints, combine: 'weakest' as const, stepWidth: Math.max(3, Math.round(0.06 * riMin)) };
  // Lateral arcs fix the horizontal centre and the radius well, the vertical centre weakly: search x wider than y.
  const off = params.centreOffset * pupil.r;
  const concentric = { ...limbus, centreRange: 0, centreStep: 1, rMin: riMin, rMax: riMax, rStep: Math.max(1, riMin / 40), pick: 'innermost' as const };
  // The three passes below read only the lateral arcs: centres within off + 1.5 (x) and 0.4 off + 1 (y) of the
  // pupil's, radii from riMin to a few pixels over the largest the first pass tries. Smooth only there.
  const reach = arcReach(pupil, { x: off + 2, y: 0.4 * off + 1.5 }, [riMin, Math.max(riMax, largestRadiusTried(concentric)) + 3], arcs);
  const limbusImg = gaussianBlurWithin(filled, 2, reach);
  let iris = refineCircle(limbusImg, pupil, concentric);
  iris = refineCircle(limbusImg, iris, { ...limbus, centreRange: off, centreRangeY: 0.4 * off, centreStep: Math.max(1, off / 5), rMin: Math.max(riMin, 0.92 * iris.r), rMax: Math.min(riMax, 1.08 * iris.r) });
  iris = refineCircle(limbusImg, iris, { ...limbus, centreRange: 1.5, centreRangeY: 1, centreStep: 0.5, rMin: Math.max(riMin, iris.r - 3), rMax: Math.min(riMax, iris.r + 3), rStep: 0.5, samples: 96 });
  if (!(iris.score >= params.minLimbusEdge)) throw new NoIrisFoundError(`the limbus is too faint (${iris.score.toFixed(2)} < ${params.minLimbusEdge})`, { limbusEdge: iris.score });
  if (Math.hypot(iris.x - pupil.x, iris.y - pupil.y) + pupil.r >= iris.r) {
    throw new NoIrisFoundError('the pupil found is not inside the iris found', { pupil, iris });
  }
  const toInput = (c: Circle): Circle => ({ x: (c.x + 0.5) * factor - 0.5, y: (c.y + 0.5) * factor - 0.5, r: c.r * factor });
  return { pupil: toInput(pupil), iris: toInput(iris), pupilEdge: pupil.score, limbusEdge: iris.score, scale: factor, working: filled, glints, glintPixels };
}

function meanInDisc(img: FloatImage, c: Circle, fraction: number): number {
  let s = 0;
  let n = 0;
  const r = fraction * c.r;
  for (let y = Math.max(0, Math.ceil(c.y - r)); y <= Math.min(img.height - 1, Math.floor(c.y + r)); y++) {
    for (let x = Math.max(0, Math.ceil(c.x - r)); x <= Math.min(img.width - 1, Math.floor(c.x + r)); x++) {
      if ((x - c.x) ** 2 + (y - c.y) ** 2 > r * r) continue;
      s += img.data[y * img.width + x]!;
      n++;
    }
  }
  return n ? s / n : img.data[Math.round(c.y) * img.width + Math.round(c.x)]!;
}
