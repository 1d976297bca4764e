/**
 * Confirmation codes: the first payload byte of every acknowledge packet. The sentences follow the datasheets
 * (ZFM-20/R307/AS608 user manuals for 0x00-0x1D; the R503/R502 manual adds 0x1E-0x29 and 0xFC-0xFF).
 */
export interface ConfirmationInfo {
  /** A stable name for logs and scripts, e.g. `NoFinger`. */
  name: string;
  /** The datasheet's meaning as a sentence. */
  meaning: string;
}

export const CONFIRMATION: Readonly<Record<number, ConfirmationInfo>> = {
  0x00: { name: 'Ok', meaning: 'command execution complete' },
  0x01: { name: 'PacketReceiveError', meaning: 'error when receiving the data package' },
  0x02: { name: 'NoFinger', meaning: 'no finger on the sensor' },
  0x03: { name: 'EnrollImageFailed', meaning: 'failed to enroll the finger (image capture failed)' },
  0x06: { name: 'ImageTooDisordered', meaning: 'failed to generate the character file: the fingerprint image is too disordered' },
  0x07: { name: 'TooFewFeatures', meaning: 'failed to generate the character file: too few feature points or the fingerprint image is too small' },
  0x08: { name: 'NoMatch', meaning: 'the finger does not match' },
  0x09: { name: 'NotFound', meaning: 'no matching finger found in the library' },
  0x0a: { name: 'CombineFailed', meaning: 'failed to combine the character files' },
  0x0b: { name: 'BadPageId', meaning: 'the PageID is beyond the finger library' },
  0x0c: { name: 'TemplateReadError', meaning: 'error reading the template from the library, or the template is invalid' },
  0x0d: { name: 'TemplateUploadError', meaning: 'error when uploading the template' },
  0x0e: { name: 'CannotReceivePackets', meaning: 'the module cannot receive the following data packages' },
  0x0f: { name: 'ImageUploadError', meaning: 'error when uploading the image (cannot upload image)' },
  0x10: { name: 'DeleteFailed', meaning: 'failed to delete the template' },
  0x11: { name: 'ClearFailed', meaning: 'failed to clear the finger library' },
  0x12: { name: 'LowPowerFailed', meaning: 'cannot enter the low-power state' },
  0x13: { name: 'WrongPassword', meaning: 'wrong password' },
  0x14: { name: 'ResetFailed', meaning: 'system reset failed' },
  0x15: { name: 'NoValidImage', meaning: 'no valid primary image in the buffer to generate the image' },
  0x16: { name: 'UpgradeFailed', meaning: 'online upgrade failed' },
  0x17: { name: 'ResidualFinger', meaning: 'residual fingerprint or the finger did not move between captures' },
  0x18: { name: 'FlashError', meaning: 'error when reading or writing the flash' },
  0x19: { name: 'UndefinedError', meaning: 'no definition error' },
  0x1a: { name: 'InvalidRegister', meaning: 'invalid register number' },
  0x1b: { name: 'BadRegisterConfig', meaning: 'incorrect configuration of the register' },
  0x1c: { name: 'BadNotepadPage', meaning: 'wrong notepad page number' },
  0x1d: { name: 'PortError', meaning: 'failed to operate the communication port' },
  0x1e: { name: 'AutoEnrollFailed', meaning: 'automatic enrollment failed' },
  0x1f: { name: 'LibraryFull', meaning: 'the fingerprint library is full' },
  0x20: { name: 'BadAddress', meaning: 'the device address is incorrect' },
  0x21: { name: 'PasswordRequired', meaning: 'the password must be verified first' },
  0x22: { name: 'TemplateNotEmpty', meaning: 'the fingerprint template is not empty' },
  0x23: { name: 'TemplateEmpty', meaning: 'the fingerprint template is empty' },
  0x24: { name: 'LibraryEmpty', meaning: 'the fingerprint library is empty' },
  0x25: { name: 'BadEntryCount', meaning: 'the number of entries is set incorrectly' },
  0x26: { name: 'Timeout', meaning: 'timeout' },
  0x27: { name: 'AlreadyEnrolled', meaning: 'the fingerprint already exists' },
  0x28: { name: 'FeaturesAssociated', meaning: 'the fingerprint features are associated' },
  0x29: { name: 'SensorInitFailed', meaning: 'sensor initialisation failed (sensor hardware error)' },
  0xfc: { name: 'UnsupportedCommand', meaning: 'unsupported command' },
  0xfd: { name: 'HardwareError', meaning: 'hardware error' },
  0xfe: { name: 'CommandFailed', meaning: 'command execution failure' },
};

export function describeConfirmation(code: number): ConfirmationInfo {
  return CONFIRMATION[code] ?? { name: `Unknown0x${code.toString(16).padStart(2, '0')}`, meaning: 'confirmation code not in the datasheet' };
}
