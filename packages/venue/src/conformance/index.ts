export { type ConformanceSetup, runVenueConformance } from './suite.ts';
