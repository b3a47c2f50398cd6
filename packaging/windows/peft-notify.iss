; Inno Setup 6 script: installs the PyInstaller onedir as a per-user (or, when elevated, per-machine) app.
; Built on Windows by `py packaging\build.py windows`, which passes AppVersion (peft_notify.__version__),
; SourceDir (the onedir) and OutputDir. tests/packaging checks AppId against peft_notify.appinfo.APP_ID.

; The reverse-DNS app id = the AppUserModelID: toasts are sent under it (desktop-notifier's app_name on
; Windows) and Windows shows them in the Action Center only when a Start-menu shortcut carries it.
#define AppId "io.github.peftnotify.PeftNotify"
#define AppName "PEFT Notify"
; The windowed (no console) executable the shortcuts start; peft-notify.exe next to it is the CLI.
#define GuiExe "peft-notify-gui.exe"
; The HKCU Run value the app's own "start at login" switch uses (peft_notify.desktop.autostart.RUN_VALUE).
#define RunValue "peft-notify"
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\peft-notify"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
AppId={#AppId}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=peft_notify developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=peft-notify-{#AppVersion}-setup
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Tasks]
Name: "startatlogin"; Description: "Start {#AppName} when I sign in (minimized to the tray)"; Flags: unchecked
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#GuiExe}"; Parameters: "app"; AppUserModelID: "{#AppId}"; Comment: "Notifications and taskbar progress for training jobs"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#GuiExe}"; Parameters: "app"; AppUserModelID: "{#AppId}"; Tasks: desktopicon

[Registry]
; Optional start at login: the same value the app's settings switch writes and reads.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "{#RunValue}"; ValueData: """{app}\{#GuiExe}"" app --minimized"; Tasks: startatlogin; Flags: uninsdeletevalue
; Uninstalling removes it even when the app's switch (not this installer) created it.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: none; ValueName: "{#RunValue}"; Flags: uninsdeletevalue
; desktop-notifier registers the AUMID's display name here on first run; remove it with the app.
Root: HKCU; Subkey: "Software\Classes\AppUserModelId\{#AppId}"; Flags: uninsdeletekey dontcreatekey

[Run]
Filename: "{app}\{#GuiExe}"; Parameters: "app"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
