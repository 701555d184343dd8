// uPlot charts as preact components: the chart is made once per mount and fed new data on every
// render. Sizes follow the container's width.

import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartProps {
  /** Options without width/height/data (set here). */
  options: Omit<uPlot.Options, 'width' | 'height'>;
  data: uPlot.AlignedData;
  height?: number;
  testid?: string;
}

export function Chart({ options, data, height = 200, testid }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current!;
    // Times are ms since the epoch everywhere in this page (uPlot's default is seconds).
    plot.current = new uPlot({ ms: 1, ...options, width: Math.max(200, el.clientWidth), height } as uPlot.Options, data, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return html`<div class="chart" ref=${box} data-testid=${testid}></div>`;
}

// Two series side by side in each slot (OK left, NG right).
const okBars = uPlot.paths.bars!({ size: [0.4, 40], align: -1 });
const ngBars = uPlot.paths.bars!({ size: [0.4, 40], align: 1 });

/** Yield per local hour: OK and NG stacked as two bar series. */
export function hourlyOptions(): ChartProps['options'] {
  return {
    legend: { show: true },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    series: [{}, { label: 'OK', fill: '#2e7d32aa', stroke: '#2e7d32', paths: okBars, points: { show: false } }, { label: 'NG', fill: '#c62828aa', stroke: '#c62828', paths: ngBars, points: { show: false } }],
    axes: [{}, { label: 'results' }],
  };
}

/** Score histogram of recent results, OK and NG apart. */
export function histogramOptions(): ChartProps['options'] {
  return {
    legend: { show: true },
    scales: { x: { time: false, range: [0, 1] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    series: [{ label: 'score' }, { label: 'OK', fill: '#2e7d32aa', stroke: '#2e7d32', paths: okBars, points: { show: false } }, { label: 'NG', fill: '#c62828aa', stroke: '#c62828', paths: ngBars, points: { show: false } }],
    axes: [{ label: 'top-1 score' }, { label: 'results' }],
  };
}

/** Latency of recent results over capture time. */
export function latencyOptions(): ChartProps['options'] {
  return {
    legend: { show: true },
    scales: { x: { time: true } },
    series: [{}, { label: 'capture → publish ms', stroke: '#1565c0', width: 1, points: { show: false } }, { label: 'inference ms', stroke: '#ef6c00', width: 1, points: { show: false } }],
    axes: [{}, { label: 'ms' }],
  };
}
