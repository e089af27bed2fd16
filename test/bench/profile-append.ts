import { runWalAppendProfile } from './wal-append.bench';
void runWalAppendProfile();
