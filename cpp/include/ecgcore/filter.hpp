// The filter domain, numerically equal to scipy.signal, in three parts as scipy splits them:
// design (filter_design.hpp: Butterworth/Chebyshev I -> zpk -> SOS, notch), application to rows
// (filter_sos.hpp: sosfilt, sosfiltfilt with scipy's odd padding, lfilter, filtfilt) and polyphase
// resampling (filter_resample.hpp).
#pragma once

#include "ecgcore/filter_design.hpp"
#include "ecgcore/filter_resample.hpp"
#include "ecgcore/filter_sos.hpp"
