import { baseVitestConfig } from '../../configs/vitest/base.ts';

export default baseVitestConfig;
