//! [`kernel!`](crate::kernel) and [`panic_handler!`](crate::panic_handler):
//! a kernel's whole crashkit glue from its few real decisions.
//!
//! What `kernel!` generates, for a kernel type `K`:
//!
//! | item | what it is |
//! |------|------------|
//! | `struct K;` | the zero-sized type the panic path and the locks are generic over |
//! | the crash record | `CrashRecord<cpus, notifiers>`, a static in section `.crash_record` |
//! | the other statics | one [`KernelState`](crate::KernelState): platform, NMI-context trackers, handler chain, lock queues, shootdown, notifier registry, panic progress |
//! | the stop handler | an `NmiHandler` the panic path puts in the chain's emergency slot |
//! | `impl Kernel for K` | the panic path's view of the statics and hooks |
//! | `impl QueueDomain for K` | so `Mutex<K, T>` and `NotifierLock<K, T>` are the kernel's locks; `relax` polls the shootdown |
//! | `K::state`, `K::record`, `K::on_nmi`, `K::panic`, `K::panic_in_exception`, `K::panic_on_unknown_nmi` | what the kernel calls from its own handlers (and tests read) |
//! | x86_64 only (`apic:`): three entry stubs | NMI (context, chain), #DF (panic), #MC (machine-check context, panic), installed by `K::install_entries` |
//! | x86_64 only: `K::set_tsc_hz`, `K::cpu_online`, `K::allow_broadcast`, `K::install_entries` (or `K::entry_stubs` for a kernel's own IDT) | what the kernel calls at bring-up |
//!
//! With `platform: TYPE = EXPR` instead of `apic:`, the same glue runs on
//! any [`Platform`](crashkit_nmi::Platform): the host simulation's tests and
//! its demo declare their kernels so (`crashkit_sim::Socket`), so the code a
//! kernel gets is the code they run.
//!
//! Everything generated lives in an anonymous `const _` block, so the
//! statics' names do not leak into the kernel's module; the kernel reaches
//! them through `K`.

/// Declare a kernel's crashkit glue: `VIS struct NAME;` (the kernel type,
/// with its attributes and docs), then the fields, in this order:
///
/// | field | meaning |
/// |-------|---------|
/// | `cpus: EXPR` | CPU capacity: the record's CPU slots, the platform's table, the trackers, the lock queues |
/// | `notifiers: EXPR` | panic notifiers: the registry's capacity and the record's notifier slots |
/// | `apic: EXPR` | x86_64: the `LocalApic`, a `const` holding `unsafe { LocalApic::xapic(BASE) }` or `unsafe { LocalApic::x2apic() }`, with its `SAFETY` argument above it (clippy's `undocumented_unsafe_blocks` does not always see a comment inside a macro's arguments) |
/// | or `platform: TYPE = EXPR` | another `Platform`, built by a constant expression (`crashkit_sim::Socket::new()` in the host simulation); no entry stubs, no APIC, no `external_nmi` |
/// | `final_action: halt` or `final_action: reboot(PATH)` | what the panic path does at its end: park the CPU for good, or call `PATH`, an `fn() -> !` that resets the machine (or exits the emulator) |
/// | `console: PATH` (optional) | the kernel's console, a `static NotifierLock<K, T>` with `T: core::fmt::Write`: an informational notifier named `console`, registered from the start, prints `crashkit: cpu N panicked: MESSAGE` on it if its lock is free (the record says `SkippedLockBusy` otherwise); its budget is `CONSOLE_BUDGET_NS` (250 ms: a serial console is slow) |
/// | `external_nmi: EXPR` (optional, x86_64) | an `ExternalNmi`: which CPUs take NMIs arriving on LINT1 (QEMU's `inject-nmi`, an NMI button, a board's watchdog): `ExternalNmi::BootCpu` (the default, as Linux's `apic_extnmi=bsp`), `All` or `None`. Evaluated on each CPU as it comes online, so it may read a boot option |
/// | `unknown_nmi: EXPR` (optional) | an `UnknownNmiPolicy` for NMIs no handler claims: `Count` (the default), `Report(fn)`, or `Escalate(K::panic_on_unknown_nmi)` to panic (Linux's `unknown_nmi_panic`) |
/// | `panic_flag: PATH` (optional) | the `static PanicFlag` the panic path claims and the locks obey: the machine's `crashkit::nmi::PANIC` unless named (tests that run kernels side by side in one process give each its own) |
/// | `nmi_handlers: EXPR` (optional) | the NMI handler chain's slots (default 8) |
/// | `config: EXPR` (optional) | a `PanicConfig` for the other choices (shootdown timing, informational list before the dump, second panickers' wait; its `final_action` is replaced by the field above) |
/// | `dump: PATH` (optional) | an `fn() -> DumpAttempt`: the hand-over to a capture kernel |
/// | `before_stop: PATH` (optional) | an `fn()` called on the panic owner just before the shootdown's stop handler is installed |
/// | `crash_log: EXPR` (optional, feature `crash-log`) | the crash log: three rings per CPU of `EXPR` bytes each (a power of two, at least 256), `K::install_log` and `K::log_hooks` (`crashkit::log::LogKernel`); with feature `defmt`, defmt's global logger once installed (docs/crash-log.md) |
///
/// # Example
///
/// ```no_run
/// use crashkit::prelude::*;
///
/// fn reset() -> ! {
///     loop { core::hint::spin_loop() } // the kernel's reset
/// }
///
/// // SAFETY: ring 0, xAPIC mode, and the APIC page identity-mapped
/// // uncacheable by the boot code, used by nothing else.
/// const APIC: LocalApic = unsafe { LocalApic::xapic(0xFEE0_0000) };
///
/// crashkit::kernel! {
///     /// This kernel's crashkit glue.
///     pub struct Crash;
///     cpus: 8,
///     notifiers: 16,
///     apic: APIC,
///     final_action: reboot(reset),
/// }
///
/// // The kernel's locks are `Mutex<Crash, T>`; a lock notifiers use during
/// // a panic is a `NotifierLock<Crash, T>`.
/// static COUNTER: Mutex<Crash, u64> = Mutex::new(0);
/// *COUNTER.lock() += 1;
/// ```
///
/// A reboot names the function that resets; a halt takes none:
///
/// ```compile_fail
/// crashkit::kernel! {
///     struct K;
///     cpus: 1,
///     notifiers: 1,
///     // SAFETY: never used to reach the hardware.
///     apic: unsafe { crashkit::prelude::LocalApic::x2apic() },
///     final_action: reboot,
/// }
/// ```
///
/// ```compile_fail
/// fn reset() -> ! { loop {} }
/// crashkit::kernel! {
///     struct K;
///     cpus: 1,
///     notifiers: 1,
///     // SAFETY: never used to reach the hardware.
///     apic: unsafe { crashkit::prelude::LocalApic::x2apic() },
///     final_action: halt(reset),
/// }
/// ```
///
/// The platform is named once: `apic:` or `platform:`, not neither, not
/// both; `external_nmi` goes with `apic:` only.
///
/// ```compile_fail
/// crashkit::kernel! {
///     struct K;
///     cpus: 1,
///     notifiers: 1,
///     final_action: halt,
/// }
/// ```
///
/// ```compile_fail
/// struct Host;
/// crashkit::kernel! {
///     struct K;
///     cpus: 1,
///     notifiers: 1,
///     // SAFETY: never used to reach the hardware.
///     apic: unsafe { crashkit::prelude::LocalApic::x2apic() },
///     platform: Host = Host,
///     final_action: halt,
/// }
/// ```
///
/// ```compile_fail
/// # use crashkit::prelude::*;
/// crashkit::kernel! {
///     struct K;
///     cpus: 1,
///     notifiers: 1,
///     platform: X86Platform<1> = X86Platform::new(
///         // SAFETY: never used to reach the hardware.
///         unsafe { LocalApic::x2apic() },
///         0,
///     ),
///     final_action: halt,
///     external_nmi: ExternalNmi::All,
/// }
/// ```
#[macro_export]
macro_rules! kernel {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        cpus: $cpus:expr,
        notifiers: $notifiers:expr,
        $(apic: $apic:expr,)?
        $(platform: $platform:ty = $init:expr,)?
        final_action: $final:ident $(($reboot:path))?
        $(, console: $console:path)?
        $(, external_nmi: $external:expr)?
        $(, unknown_nmi: $unknown:expr)?
        $(, panic_flag: $flag:path)?
        $(, nmi_handlers: $handlers:expr)?
        $(, config: $config:expr)?
        $(, dump: $dump:path)?
        $(, before_stop: $before_stop:path)?
        $(, crash_log: $log_bytes:expr)?
        $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $name;

        const _: () = {
            use $crate::__private as ck;

            // Named so as not to shadow a kernel's own constants in the
            // fields' expressions (`cpus: CPUS` must mean the kernel's).

            const __CRASHKIT_CPUS: usize = $cpus;
            const __CRASHKIT_NOTIFIERS: usize = $notifiers;
            const __CRASHKIT_HANDLERS: usize = $crate::__first!($($handlers,)? 8,);

            /// The crash record: what the dump tools read. A section of its
            /// own, which a linker script need not name (docs/integration.md).
            #[unsafe(link_section = ".crash_record")]
            static RECORD: ck::CrashRecord<__CRASHKIT_CPUS, __CRASHKIT_NOTIFIERS> = ck::CrashRecord::new();
            $(
                /// The panic on the kernel's console, if its lock is free.
                static CONSOLE_REPORT: ck::Notifier = ck::Notifier::locked(
                    "console",
                    ck::NotifierList::Informational,
                    0,
                    &ck::LockedBody::new(&$console, ck::report_panic),
                )
                .with_budget(ck::CONSOLE_BUDGET_NS);
            )?
            static STATE: ck::KernelState<
                __CRASHKIT_CPUS,
                __CRASHKIT_HANDLERS,
                __CRASHKIT_NOTIFIERS,
                $crate::__kernel_platform!(type [$($apic)?] [$($platform)?]),
            > = ck::KernelState::with_platform(
                    $crate::__kernel_platform!(init [$($apic)?] [$($init)?]),
                    $crate::__first!($($unknown,)? ck::UnknownNmiPolicy::Count,),
                    RECORD.cpu_slots(),
                    &[$($crate::__first!(&CONSOLE_REPORT, $console,))?],
                );
            static STOP: ck::NmiHandler =
                ck::NmiHandler::new("crashkit-stop", |event| STATE.stop(event));

            $crate::__kernel_x86!([$($apic)?] $name [$($external)?]);
            $($crate::__kernel_log!($name, $log_bytes);)?
            $crate::__kernel_platform!(check [$($apic)?] [$($platform)?] [$($external)?]);

            impl $name {
                /// All of crashkit's statics but the record (the chain to
                /// register NMI handlers in, the trackers, the queues).
                pub fn state() -> &'static ck::KernelState<
                    __CRASHKIT_CPUS,
                    __CRASHKIT_HANDLERS,
                    __CRASHKIT_NOTIFIERS,
                    $crate::__kernel_platform!(type [$($apic)?] [$($platform)?]),
                > {
                    &STATE
                }

                /// The crash record (what a dump holds; `snapshot` copies
                /// it out).
                pub fn record() -> &'static ck::CrashRecord<__CRASHKIT_CPUS, __CRASHKIT_NOTIFIERS> {
                    &RECORD
                }

                /// The NMI entry's body, for a kernel with its own NMI stub:
                /// NMI context, then the handler chain.
                pub fn on_nmi(frame: &ck::RegisterFrame) {
                    STATE.on_nmi(frame);
                }

                /// The panic handler's body.
                pub fn panic(info: &::core::panic::PanicInfo<'_>) -> ! {
                    ck::panic::<$name>(info)
                }

                /// Panic from an exception or NMI handler with the
                /// interrupted registers.
                pub fn panic_in_exception(
                    message: ::core::fmt::Arguments<'_>,
                    frame: &ck::RegisterFrame,
                ) -> ! {
                    ck::panic_in_exception::<$name>(message, frame)
                }

                /// An unclaimed NMI means the machine is dead: panic with
                /// the registers it interrupted. For `unknown_nmi:
                /// UnknownNmiPolicy::Escalate(K::panic_on_unknown_nmi)`
                /// (Linux's `unknown_nmi_panic`).
                pub fn panic_on_unknown_nmi(event: &ck::NmiEvent<'_>) -> ! {
                    ck::panic_in_exception::<$name>(
                        format_args!("unknown NMI on {}", event.cpu),
                        event.frame,
                    )
                }
            }

            impl ck::Kernel for $name {
                type Platform = $crate::__kernel_platform!(type [$($apic)?] [$($platform)?]);
                type Record = ck::CrashRecord<__CRASHKIT_CPUS, __CRASHKIT_NOTIFIERS>;
                type Notifiers = ck::Registry<__CRASHKIT_NOTIFIERS>;

                const CONFIG: ck::PanicConfig = ck::PanicConfig {
                    final_action: $crate::__final_choice!($final $(($reboot))?),
                    ..$crate::__first!($($config,)? ck::PanicConfig::DEFAULT,)
                };

                fn platform() -> &'static Self::Platform {
                    STATE.platform()
                }
                fn record() -> &'static Self::Record {
                    &RECORD
                }
                fn shootdown() -> &'static ck::Shootdown {
                    STATE.shootdown()
                }
                fn notifiers() -> &'static Self::Notifiers {
                    STATE.notifiers()
                }
                fn progress() -> &'static ck::Progress {
                    STATE.progress()
                }
                fn install_stop_handler() {
                    $($before_stop();)?
                    let _previous = STATE.chain().set_emergency(Some(&STOP));
                }
                fn nmi_depth() -> u32 {
                    STATE.nmi_depth()
                }
                fn lock_events() -> (u32, u32) {
                    STATE.lock_events()
                }
                $(
                    fn panic_flag() -> &'static ck::PanicFlag {
                        &$flag
                    }
                )?
                $(
                    fn dump() -> ck::DumpAttempt {
                        $dump()
                    }
                )?
                $(
                    fn reboot() -> ! {
                        $reboot()
                    }
                )?
            }

            impl ck::QueueDomain for $name {
                fn queues() -> &'static [ck::CpuQueue] {
                    STATE.queues()
                }
                fn current_cpu() -> ck::CpuIndex {
                    STATE.current_cpu()
                }
                fn now_ns() -> u64 {
                    STATE.now_ns()
                }
                fn relax() {
                    STATE.relax();
                }
                $(
                    fn panic_flag() -> &'static ck::PanicFlag {
                        &$flag
                    }
                )?
            }
        };
    };
}

/// `kernel!`'s `crash_log:` field: the rings, the hooks, `LogKernel`.
#[cfg(feature = "crash-log")]
#[doc(hidden)]
#[macro_export]
macro_rules! __kernel_log {
    ($name:ident, $bytes:expr) => {
        /// The crash log's rings (docs/crash-log.md).
        static LOG: ck::LogRings<__CRASHKIT_CPUS, { $bytes }> = ck::LogRings::new();
        static LOG_HOOKS: ck::LogHooks = ck::LogHooks {
            begin: || $crate::log::begin(&LOG, STATE.platform(), STATE.log_place()),
            write: |bytes| $crate::log::write(&LOG, STATE.log_place(), bytes),
            end: || $crate::log::end(&LOG, STATE.platform(), STATE.log_place()),
        };

        impl $name {
            /// The crash log's rings.
            pub fn crash_log() -> &'static ck::LogRings<__CRASHKIT_CPUS, { $bytes }> {
                &LOG
            }
        }

        impl ck::LogKernel for $name {
            fn log_hooks() -> &'static ck::LogHooks {
                &LOG_HOOKS
            }
            fn log_area() -> (u64, u64) {
                (
                    ::core::ptr::from_ref(&LOG) as u64,
                    ::core::mem::size_of_val(&LOG) as u64,
                )
            }
            fn install_log(build_id: &[u8]) {
                let (address, size) = <$name as ck::LogKernel>::log_area();
                LOG.install(build_id, address);
                RECORD.set_log(address, size);
                $crate::log::install_global(&LOG_HOOKS);
            }
        }
    };
}

/// `kernel!`'s `crash_log:` field without the feature.
#[cfg(not(feature = "crash-log"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __kernel_log {
    ($name:ident, $bytes:expr) => {
        ::core::compile_error!("kernel!'s `crash_log:` needs crashkit's feature `crash-log`");
    };
}

/// `kernel!`'s platform: `type` and `init` from `apic:` (x86_64) or
/// `platform: TYPE = EXPR`; `check` refuses both, neither, and
/// `external_nmi` without an APIC. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __kernel_platform {
    (type [$apic:expr] []) => {
        $crate::__private::X86Platform<__CRASHKIT_CPUS>
    };
    (type [] [$platform:ty]) => {
        $platform
    };
    (type [$($apic:expr)?] [$($platform:ty)?]) => {
        ()
    };
    (init [$apic:expr] []) => {
        $crate::__private::X86Platform::new($apic, 0)
    };
    (init [] [$init:expr]) => {
        $init
    };
    (init [$($apic:expr)?] [$($init:expr)?]) => {
        ()
    };
    (check [$apic:expr] [] [$($external:expr)?]) => {};
    (check [] [$platform:ty] []) => {};
    (check [] [$platform:ty] [$external:expr]) => {
        ::core::compile_error!(
            "crashkit::kernel!: `external_nmi` programs the local APIC: it goes with `apic:`, not `platform:`"
        );
    };
    (check [] [] [$($external:expr)?]) => {
        ::core::compile_error!(
            "crashkit::kernel!: name the platform: `apic: EXPR` (x86_64) or `platform: TYPE = EXPR`"
        );
    };
    (check [$apic:expr] [$platform:ty] [$($external:expr)?]) => {
        ::core::compile_error!(
            "crashkit::kernel!: `apic:` and `platform:` both given: the APIC is x86_64's platform"
        );
    };
}

/// `kernel!`'s x86_64 part (with `apic:`): the NMI, #DF and #MC entry stubs
/// and the bring-up functions, expanded beside the statics. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __kernel_x86 {
    ([] $name:ident [$($external:expr)?]) => {};
    ([$apic:expr] $name:ident [$($external:expr)?]) => {
        extern "C" fn on_nmi(frame: &mut $crate::__private::RegisterFrame) {
            STATE.on_nmi(frame);
        }
        extern "C" fn on_double_fault(frame: &mut $crate::__private::RegisterFrame) {
            STATE.on_double_fault::<$name>(frame)
        }
        extern "C" fn on_machine_check(frame: &mut $crate::__private::RegisterFrame) {
            STATE.on_machine_check::<$name>(frame)
        }
        $crate::nmi_entry_stub!(fn nmi_stub => on_nmi);
        $crate::nmi_entry_stub_with_error_code!(fn double_fault_stub => on_double_fault);
        $crate::nmi_entry_stub!(fn machine_check_stub => on_machine_check);

        impl $name {
            /// Give the TSC frequency measured at boot (Hz). Until
            /// then the platform's clock counts TSC ticks.
            pub fn set_tsc_hz(tsc_hz: u64) {
                STATE.set_tsc_hz(tsc_hz);
            }

            /// Bring the calling CPU online as `cpu` (its APIC
            /// enabled, LINT1 as NMI or masked per the
            /// `external_nmi` setting, registered): from then on the
            /// shootdown stops it. The boot CPU first (index 0),
            /// before it starts another.
            pub fn cpu_online(cpu: $crate::__private::CpuIndex) -> Result<(), $crate::__private::RegisterCpuError> {
                let external: $crate::__private::ExternalNmi =
                    $crate::__first!($($external,)? $crate::__private::ExternalNmi::BootCpu,);
                STATE.cpu_online(cpu, external)
            }

            /// Say that every CPU the machine has is up (its
            /// bring-up is over): the shootdown may then broadcast
            /// its NMI with the APIC's shorthand, which also reaches
            /// CPUs past the `cpus` capacity. Until then it sends one
            /// NMI per CPU that came online, so a CPU still starting
            /// is never hit.
            pub fn allow_broadcast() {
                STATE.platform().allow_broadcast();
            }

            /// Install crashkit's NMI, #DF and #MC entries in `idt`.
            ///
            /// # Safety
            /// Each IST slot holds a stack reserved for its vector on
            /// every CPU that loads `idt`, and no CPU can take these
            /// vectors through `idt` while it is written (install
            /// before loading it).
            pub unsafe fn install_entries(
                idt: &mut $crate::__private::InterruptDescriptorTable,
                ist: &$crate::__private::IstSlots,
            ) -> Result<(), $crate::__private::InstallError> {
                let stubs = Self::entry_stubs();
                // SAFETY: the stubs match their vectors (no error
                // code for NMI and #MC, one for #DF: the macros
                // above); the caller guarantees the IST stacks and
                // that `idt` is not in use.
                unsafe { $crate::__private::install_entries(idt, &stubs, ist) }
            }

            /// The NMI, #DF and #MC entry stubs, for a kernel that
            /// writes its own IDT: `K::entry_stubs().gates(&ist)`
            /// gives each gate's vector, handler address and IST
            /// field (`Gate::descriptor` encodes it), with the duties
            /// of [`install_entries`](Self::install_entries).
            pub fn entry_stubs() -> $crate::__private::EntryStubs {
                $crate::__private::EntryStubs {
                    nmi: nmi_stub,
                    double_fault: double_fault_stub,
                    machine_check: machine_check_stub,
                }
            }
        }
    };
}

/// The kernel's `#[panic_handler]`, calling crashkit's panic path for the
/// kernel type given (declared by [`kernel!`](crate::kernel)). A kernel that
/// wants to do something first writes its own handler and ends it with
/// `K::panic(info)`.
#[macro_export]
macro_rules! panic_handler {
    ($kernel:ty) => {
        #[panic_handler]
        fn __crashkit_panic_handler(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__private::panic::<$kernel>(info)
        }
    };
}

/// `halt` or `reboot(PATH)` to the panic path's `FinalChoice`. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __final_choice {
    (halt) => {
        $crate::__private::FinalChoice::Halt
    };
    (reboot($reset:path)) => {
        $crate::__private::FinalChoice::Reboot
    };
    (reboot) => {
        ::core::compile_error!(
            "crashkit::kernel!: `final_action: reboot(PATH)` names the kernel's reset function"
        )
    };
    (halt($reset:path)) => {
        ::core::compile_error!(
            "crashkit::kernel!: `final_action: halt` takes no function (`reboot(PATH)` does)"
        )
    };
    ($other:ident $($rest:tt)*) => {
        ::core::compile_error!(concat!(
            "crashkit::kernel!: final_action is `halt` or `reboot(PATH)`, not `",
            stringify!($other),
            "`"
        ))
    };
}

/// The first of the expressions given: an optional field, else its
/// default. Not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __first {
    ($first:expr, $($rest:expr,)*) => {
        $first
    };
}
